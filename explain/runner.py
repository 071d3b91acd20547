"""`explain()`: explain the first n samples of a subject, write PNG + JSON, return a Report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explain import shap
from explain.base import get_explainer
from explain.errors import ExplainError
from explain.report import Report, summarize
from explain.subject import Subject


def explain(subject: Subject, out_dir: Path | str | None, *, n: int = 3, num_samples: int = 1000,
            seed: int = 0, figures: bool = True, indices: Sequence[int] | None = None,
            **options: Any) -> Report:
    """Explain the first n samples of subject.samples (or the given `indices`).

    Sample i gets a fresh LIME explainer seeded with seed + i, so the same subject and seed give
    the same weights, whatever else is explained in the run. When out_dir is not None it gets
    sample_<i>.json (weights and fidelity) and, if figures, sample_<i>.png per explanation, plus
    report.json. `options` go to the explainer kind (see its `options`, e.g. segmentation="slic",
    discretize_continuous=True, deletion_k=3); unknown ones raise ExplainError.
    """
    cls = get_explainer(subject.kind)
    if num_samples < 10:
        raise ExplainError(f"num_samples must be >= 10 for LIME's local fit, got {num_samples}")
    explainer = cls(**options)
    explainer.prepare(subject)
    total = len(subject.samples)
    if indices is None:
        if n < 1:
            raise ExplainError(f"n must be >= 1, got {n}")
        indices = range(min(n, total))
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < total]
    if bad:
        raise ExplainError(f"sample indices {bad} out of range: there are {total} samples")
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    explanations, figs = [], {}
    for i in indices:
        e = explainer.explain_one(subject, i, seed + i, num_samples)
        if subject.compare_shap:
            shap.compare(subject, e, seed + i)
        if out is not None:
            name = f"sample_{i}"
            if figures:
                fig = explainer.figure(subject, e)
                e.png = out / f"{name}.png"
                _save_png(fig, e.png)
                figs[name] = e.png
                explainer.save_extras(e, out / name)  # e.g. the text explainer's HTML view
            e.json = out / f"{name}.json"
            e.json.write_text(json.dumps({**e.to_dict(), **shap.json_entry(e)}, indent=2,
                                         allow_nan=False))
        explanations.append(e)

    report = Report(kind=subject.kind, explanations=explanations,
                    summary=summarize(explanations, subject.true_weights is not None),
                    figures=figs, num_samples=num_samples, seed=seed)
    if out is not None:
        report.json_path = out / "report.json"
        report.json_path.write_text(report.to_json())
    return report


def _save_png(fig: Any, path: Path) -> None:
    """PNG at dpi 100 through the Agg canvas directly (no pyplot, no backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(100)
    FigureCanvasAgg(fig).print_png(path)
