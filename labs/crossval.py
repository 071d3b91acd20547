"""k-fold cross-validation on the shared trainer: one named `run.fit` per fold.

A single train/test split of a small data set (150 iris flowers) gives an accuracy that moves
by several points with the seed; k folds give every sample one turn in the test set and a mean
± standard deviation instead of one lucky or unlucky number:

>>> cv = crossval.cross_validate(run, lambda: models.mlp(4, [8], 3), x, y, k=10,
...                              loss=nn.CrossEntropyLoss())
>>> cv.mean("acc"), cv.std("acc")          # over the 10 held-out folds
>>> crossval.log_table(run, "folds", cv)

Each fold is `run.fit(..., name="fold<i>")`: its metrics are on their own axis
(`fold3/epoch`), its checkpoints in `checkpoints/fold3/`. The inputs are standardized with
each fold's own training statistics (never the held-out fold's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from labs.data import Dataset, Split

if TYPE_CHECKING:
    from torch import nn

    from labs.context import FitResult, Run


@dataclass
class CVResult:
    """Per-fold test metrics (`folds[i]` is fold i's `fit.test`) and the fits themselves."""

    folds: list[dict[str, float]]
    fits: list[FitResult] = field(repr=False, default_factory=list)
    sizes: list[int] = field(default_factory=list)  # held-out samples per fold

    def values(self, key: str) -> np.ndarray:
        return np.array([f[key] for f in self.folds], dtype=float)

    def mean(self, key: str) -> float:
        return float(self.values(key).mean())

    def std(self, key: str) -> float:
        """Standard deviation over folds (ddof=0, as `cross_val_score(...).std()` reports)."""
        return float(self.values(key).std())

    def summary(self, prefix: str = "cv_") -> dict[str, float]:
        """`{cv_<metric>_mean, cv_<metric>_std}` for every metric the folds report."""
        out: dict[str, float] = {}
        for key in self.folds[0] if self.folds else ():
            out[f"{prefix}{key}_mean"] = self.mean(key)
            out[f"{prefix}{key}_std"] = self.std(key)
        return out


def folds(y: np.ndarray, k: int = 10, *, stratified: bool = True, seed: int = 0
          ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, test indices) of k shuffled folds; stratified keeps each fold's class
    proportions (scikit-learn's StratifiedKFold / KFold)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if k < 2:
        from labs.errors import ConfigError

        raise ConfigError(f"k-fold cross-validation needs k >= 2, not {k}")
    splitter = (StratifiedKFold if stratified else KFold)(k, shuffle=True, random_state=seed)
    y = np.asarray(y)
    return [(tr, te) for tr, te in splitter.split(np.zeros((len(y), 1)), y)]


def fold_dataset(x: np.ndarray, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, *,
                 scale: bool = True, classification: bool = True,
                 feature_names: Sequence[str] | None = None,
                 class_names: Sequence[str] | None = None) -> Dataset:
    """One fold as a `Dataset`, inputs standardized with the fold's training statistics."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    x_tr = x[train_idx]
    mean = x_tr.mean(0) if scale else np.zeros(x.shape[1:], np.float32)
    std = x_tr.std(0) if scale else np.ones(x.shape[1:], np.float32)
    std = np.where(std < 1e-8, 1.0, std).astype(np.float32)

    def split(idx: np.ndarray) -> Split:
        xt = torch.from_numpy(((x[idx] - mean) / std).astype(np.float32))
        return Split(xt, torch.from_numpy(y[idx].astype(np.int64 if classification
                                                        else np.float32)))

    n_classes = int(y.max()) + 1 if classification else 0
    return Dataset(train=split(train_idx), test=split(test_idx), n_classes=n_classes,
                   feature_names=feature_names,
                   class_names=class_names or ([str(c) for c in range(n_classes)]
                                               if n_classes else None),
                   encode=lambda raw: ((np.asarray(raw, np.float32) - mean) / std),
                   extras={"mean": mean, "std": std})


def cross_validate(run: Run, make_model: Callable[[], nn.Module], x: np.ndarray,
                   y: np.ndarray, *, k: int = 10, stratified: bool = True, seed: int = 0,
                   scale: bool = True, classification: bool = True,
                   feature_names: Sequence[str] | None = None,
                   class_names: Sequence[str] | None = None, prefix: str = "fold",
                   keep: bool = False, **fit_kwargs: Any) -> CVResult:
    """Train a fresh `make_model()` on each of k folds with `run.fit(..., name=f"{prefix}{i}",
    **fit_kwargs)` and collect every fold's test metrics.

    The fold models are not kept for `lab eval` / `lab explain` unless `keep=True`: each saw
    different data from the lab's `data()`; a lab that wants a model to explain trains a final
    one on its usual split.
    """
    result = CVResult([])
    for i, (tr, te) in enumerate(folds(y, k, stratified=stratified and classification,
                                       seed=seed)):
        data = fold_dataset(x, y, tr, te, scale=scale, classification=classification,
                            feature_names=feature_names, class_names=class_names)
        name = f"{prefix}{i}"
        fit = run.fit(make_model(), data, name=name, **fit_kwargs)
        if not keep:
            run.models.pop(name, None)
        result.folds.append(dict(fit.test))
        result.fits.append(fit)
        result.sizes.append(len(te))
    return result


def log_table(run: Run, name: str, cv: CVResult) -> list[list[Any]]:
    """One row per fold plus mean and std rows; logged as a run table and returned."""
    keys = list(cv.folds[0]) if cv.folds else []
    rows: list[list[Any]] = [[f"fold{i}", n, *(f[k] for k in keys)]
                             for i, (f, n) in enumerate(zip(cv.folds, cv.sizes))]
    rows.append(["mean", float(np.mean(cv.sizes)), *(cv.mean(k) for k in keys)])
    rows.append(["std", float(np.std(cv.sizes)), *(cv.std(k) for k in keys)])
    run.table(name, ["fold", "n_test", *keys], rows)
    return rows
