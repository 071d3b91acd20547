"""LIME explanations for any model, with fidelity numbers that say whether to trust them.

A leaf library: numpy at import time; lime, torch, skimage and matplotlib are imported by the
functions that need them, so `import explain` stays cheap.

    from explain import Subject, explain, torch_predict
    subject = Subject("image", torch_predict(model), x_test[:3], image_shape=(8, 8))
    report = explain(subject, run_dir / "explanations")
    report.summary  # {"explain_r2": ..., "explain_deletion_ratio": ..., ...}

Explainer kinds register themselves with `@register(kind)`; each built-in kind is one module
imported below (add a kind: a new module + one import line here).
"""

from explain import image, tabular, text  # noqa: F401  (register the built-in kinds)
from explain.base import Explainer, Explanation, explainer_kinds, get_explainer, register
from explain.errors import ExplainError
from explain.predict import torch_predict
from explain.report import Report
from explain.runner import explain
from explain.subject import Subject

__all__ = ["ExplainError", "Explainer", "Explanation", "Report", "Subject", "explain",
           "explainer_kinds", "get_explainer", "register", "torch_predict"]
