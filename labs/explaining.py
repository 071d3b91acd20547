"""The framework side of explanations: build `explain.Subject`s from a lab's model and data,
run them after training (or on a reloaded run), and send the results to the tracker.

The LIME work itself lives in the leaf package `explain/`; a lab only declares what kind of
input it explains (`explains = "image"`), or overrides `Lab.subjects` to add ground truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labs.data import Dataset, is_lazy
from labs.errors import LabError

TRAIN_SAMPLE = 1000  # training rows drawn from a lazy split for tabular LIME's statistics


def default_subject(kind: str, model: Any, data: Dataset, cfg: Any, *,
                    samples: np.ndarray | None = None, labels: np.ndarray | None = None,
                    n: int | None = None) -> Any:
    """A subject of `kind` for `model` (or the first of a dict of models) on the test split.

    The samples are `samples`/`labels` when given, else the test split's first `n` items
    (`Dataset.sample`: the whole split when in memory, a few hundred items of a lazy one); the
    tabular explainer's training statistics come from a sample of the training split.
    """
    from explain import Subject, torch_predict

    models = model if isinstance(model, dict) else {"": model}
    net = next(iter(models.values()))
    classification = data.n_classes > 0
    if samples is None:
        samples, test_labels = data.sample("test", n)
        labels = test_labels if labels is None else labels
    train = None
    if not is_lazy(data.train):
        train, _ = data.sample("train")
    elif kind == "tabular":  # tabular LIME's feature statistics: a seeded sample suffices
        train, _ = data.sample("train", TRAIN_SAMPLE, seed=0)
    numeric = np.asarray(samples).dtype.kind in "biufc"
    return Subject(
        kind=kind,
        predict=torch_predict(net, softmax=classification,
                              input_shape=data.input_shape if numeric else None),
        samples=samples,
        labels=labels,
        train=train,
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
