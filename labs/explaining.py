"""The framework side of explanations: build `explain.Subject`s from a lab's model and data,
run them after training (or on a reloaded run), and send the results to the tracker.

The LIME work itself lives in the leaf package `explain/`; a lab only declares what kind of
input it explains (`explains = "image"`), or overrides `Lab.subjects` to add ground truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labs.data import Dataset
from labs.errors import LabError


def default_subject(kind: str, model: Any, data: Dataset, cfg: Any) -> Any:
    """A subject of `kind` from the dataset's test split and metadata."""
    from explain import Subject, torch_predict

    models = model if isinstance(model, dict) else {"": model}
    net = next(iter(models.values()))
    classification = data.n_classes > 0
    return Subject(
        kind=kind,
        predict=torch_predict(net, softmax=classification, input_shape=data.input_shape),
        samples=data.test.x.cpu().numpy(),
        labels=data.test.y.cpu().numpy(),
        train=data.train.x.cpu().numpy(),
        class_names=data.class_names,
        feature_names=data.feature_names,
        image_shape=data.image_shape,
        mode="classification" if classification else "regression",
        display=data.display,
    )


def explain_run(lab: Any, cfg: Any, run: Any, models: dict[str, Any], data: Dataset, *,
                n: int, num_samples: int, out_dir: Path | None = None,
                samples: np.ndarray | None = None) -> dict[str, float]:
    """Explain `n` samples of every subject of the lab; returns the fidelity summary.

    With several subjects (e.g. one perceptron per gate) each gets a sub-folder and the run's
    figures are their mean.
    """
    import explain

    model = models if len(models) > 1 else next(iter(models.values()))
    subjects = lab.subjects(cfg, model, data)
    if samples is not None:
        for s in subjects.values():
            s.samples, s.labels = samples, None
    out_dir = out_dir or run.dir / "explanations"
    sums: dict[str, list[float]] = {}
    for name, subject in run.bar(subjects.items(), desc="explaining", total=len(subjects)):
        try:
            report = explain.explain(subject, out_dir / name if name else out_dir, n=n,
                                     num_samples=num_samples, seed=cfg.seed)
        except explain.ExplainError as e:  # a bad explain_* value or input: the user's to fix
            raise LabError(f"cannot explain: {e}") from None
        prefix = f"explain/{name}/" if name else "explain/"
        for fig_name, path in report.figures.items():
            run.tracker.log_figure(prefix + fig_name, path)
        columns, rows = report.table()
        run.tracker.log_table(f"{prefix}table".replace("/", "_"), columns, rows)
        for key, value in report.summary.items():
            sums.setdefault(key, []).append(value)
    out = {}
    for key, values in sums.items():
        finite = [v for v in values if v is not None and np.isfinite(v)]
        out[key] = float(np.mean(finite)) if finite else float("nan")
    return out
