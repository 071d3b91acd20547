"""Fidelity checks shared by every explainer kind: they say whether to trust an explanation.

* Deletion test: "remove" (set to the baseline) the k features LIME says support the explained
  output most, and measure how much that output drops; compare with k random features. A faithful
  explanation removes more than chance. It works on *feature maps*: an integer array giving the
  feature id of every element of the input in the explainer's working space (a segment map for an
  image, `arange(F)` for a table row), so a new explainer kind reuses it as is.
* Run summary: the ratio of MEANS (mean LIME drop / mean random drop). A mean of per-sample
  ratios would blow up whenever one random draw happens to drop ~0.
* Ground truth: Spearman rank correlation between LIME's importances and known ones.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from explain.errors import ExplainError

# Below this mean random drop the deletion ratio is undefined (reported as nan).
EPS = 1e-9


@dataclass(frozen=True)
class Deletion:
    """Result of one deletion test (drops are in the explained output's units: a probability,
    or the absolute change of the predicted value in regression)."""

    k: int
    top: float                    # drop when LIME's top-k features are removed
    random: float                 # mean drop over the random k-feature draws
    features: list[int]           # ids of LIME's top-k features


def choose_k(n_features: int, k: int | None = None, frac: float = 0.2) -> int:
    """Features to remove: `k` if given, else ceil(frac * n_features); at least 1, at most all."""
    if k is None:
        k = math.ceil(frac * n_features)
    return int(min(max(1, k), n_features))


def deletion_test(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, fill,
                  feature_map: np.ndarray, contributions: np.ndarray, target: int | None,
                  k: int, seed: int, draws: int = 10) -> Deletion:
    """Drop of the explained output when LIME's top-k features vs k random ones are removed.

    predict: (N, *x.shape) -> (N, C) outputs, or (N,) values when target is None.
    x: one input in the explainer's working space; fill: what a removed element becomes
        (broadcastable to x.shape).
    feature_map: feature id of each element; its shape is a prefix of x.shape (an (H, W)
        segment map for an (H, W, 3) image), so a feature covers all channels of its pixels.
    contributions: per feature, how much it pushes the explained output up at this input
        (LIME weight x the feature's interpretable value); the top-k are the largest.
    All 1 + 1 + draws copies go through ONE predict call; `seed` fixes the random draws.

    Regression (target None): a value has no "towards the other classes" direction, and random
    deletions move it up as often as down (their mean drop can be ~0 or negative), so the top-k
    are the largest |contributions| and a "drop" is the absolute change of the value.
    """
    contributions = np.asarray(contributions, dtype=np.float64)
    n_features = len(contributions)
    k = int(min(max(1, k), n_features))
    regression = target is None
    score = np.abs(contributions) if regression else contributions
    top = np.argsort(-score, kind="stable")[:k]
    rng = np.random.default_rng(seed)
    sets = [top] + [rng.choice(n_features, size=k, replace=False) for _ in range(draws)]
    masks = np.stack([np.isin(feature_map, s) for s in sets])
    masks = masks.reshape(masks.shape + (1,) * (x.ndim - feature_map.ndim))
    fill = np.broadcast_to(np.asarray(fill, dtype=x.dtype), x.shape)
    batch = np.concatenate([x[None], np.where(masks, fill, x[None])])
    out = np.asarray(predict(batch), dtype=np.float64)
    values = out[:, target] if target is not None else out.reshape(len(batch))
    drops = values[0] - values[1:]
    if regression:
        drops = np.abs(drops)
    return Deletion(k=k, top=float(drops[0]),
                    random=float(drops[1:].mean()) if draws else float("nan"),
                    features=[int(f) for f in top])


# Drops smaller than this (both LIME's and random's) mean removing features changed nothing.
NEGLIGIBLE = 1e-6


def deletion_meaningful(top: float, random: float) -> bool:
    """Whether a deletion test says anything: False when neither LIME's top-k nor the random
    features moved the output (0.000 vs 0.000: e.g. a step unit far from its threshold, or a
    truth-table row whose inputs already equal the baseline), so no comparison is possible."""
    return bool(abs(top) > NEGLIGIBLE or abs(random) > NEGLIGIBLE)


def describe_deletion(k: int, top: float, random: float) -> str:
    """The deletion test in words for figures and printouts: the two drops, or "not
    meaningful" when there is nothing to compare (see `deletion_meaningful`)."""
    if not deletion_meaningful(top, random):
        return f"deletion top-{k}: not meaningful (removing features changes nothing)"
    return f"deletion top-{k} {top:.3f} vs random {random:.3f}"


def deletion_ratio(top: Sequence[float], random: Sequence[float]) -> float:
    """Ratio of means over a run: mean LIME drop / mean random drop.

    nan when the mean random drop is <= EPS (removing random features changes nothing on
    average, so "better than random" is undefined) or when there is nothing to average.
    """
    if len(top) == 0:
        return float("nan")
    den = float(np.mean(random))
    if not den > EPS:
        return float("nan")
    return float(np.mean(top)) / den


def rank_correlation(lime_weights: np.ndarray, true_weights: np.ndarray) -> float | None:
    """Spearman correlation of ABSOLUTE importances: |LIME weights| vs |true weights|.

    Absolute, because the question is "does LIME rank the inputs like the model does", and the
    sign flips with the explained class (class 0 of a binary linear model has the negated
    weights of class 1). None when undefined: fewer than 2 features or a constant vector.
    """
    a = np.abs(np.asarray(lime_weights, dtype=np.float64).ravel())
    b = np.abs(np.asarray(true_weights, dtype=np.float64).ravel())
    if a.shape != b.shape:
        raise ValueError(f"{a.size} LIME weights vs {b.size} true weights")
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = spearmanr(a, b).statistic
    return None if not np.isfinite(rho) else float(rho)


def true_row(true_weights: np.ndarray, input_size: int, target: int | None) -> np.ndarray:
    """The ground-truth weights for one explained output, flattened to one per input element.

    Accepts one weight per input element, or one row per class (C, input elements) from which
    the explained class's row is taken.
    """
    tw = np.asarray(true_weights, dtype=np.float64)
    if tw.size == input_size:
        return tw.reshape(input_size)
    if tw.ndim >= 2 and tw[0].size == input_size and target is not None and target < len(tw):
        return tw[target].reshape(input_size)
    raise ExplainError(
        f"true_weights of shape {tw.shape} fit neither one weight per input value "
        f"({input_size}) nor one row of {input_size} per class")
