"""`Subject`: what to explain -- a black-box predict function plus the inputs to explain.

Everything here is in the MODEL'S INPUT SPACE (after any normalization): the samples, the
training statistics and the baseline that stands for a removed feature. Only `display` maps an
input back to something a person can look at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from explain.errors import ExplainError

MODES = ("classification", "regression")


@dataclass
class Subject:
    """What to explain: a black-box model plus the inputs to explain, in the model's input space.

    predict: (N, *input_shape) float32 -> (N, C) class probabilities, or (N,) values in
        regression mode. It is called with large batches (all of LIME's perturbations at once).
    samples: (n, *input_shape) numeric inputs to explain, or (n,) strings for text kinds (passed
        to `predict` as they are, not cast to float).
    labels: true labels of `samples` (figure titles, JSON).
    train: training inputs; the tabular explainer's statistics (LimeTabularExplainer's
        training_data) and the default tabular baseline (per-feature mean).
    image_shape: (H, W) or (H, W, C): how ONE sample looks as an image. Samples may be flat
        vectors (64-d digits -> (8, 8)) or channels-first (C, H, W) tensors.
    baseline: value of a removed feature in model input space (LIME's hide_color for images and
        the deletion-test fill): a scalar, one value per channel, or one value per input element.
        Default: 0.0 for images, per-feature mean of `train` for tabular.
    display: maps one sample (shaped `image_shape`) to something imshow can show.
    true_weights: ground-truth importances, e.g. a linear model's weights: one per input element,
        or one row per class (C, n_inputs). When given, each explanation records the Spearman
        rank correlation of ABSOLUTE importances (see `explain.fidelity.rank_correlation`).
    compare_shap: also run KernelSHAP (captum) on each explained row and record how well its
        feature ranking agrees with LIME's (tabular kind; see `explain.shap`): the sample JSON
        gets a `shap` entry and the summary `explain_shap_rank_corr`.
    """

    kind: str
    predict: Callable[[np.ndarray], np.ndarray]
    samples: np.ndarray
    labels: np.ndarray | None = None
    train: np.ndarray | None = None
    class_names: Sequence[str] | None = None
    feature_names: Sequence[str] | None = None
    image_shape: tuple[int, ...] | None = None
    mode: str = "classification"
    baseline: float | np.ndarray | None = None
    display: Callable[[np.ndarray], np.ndarray] | None = None
    true_weights: np.ndarray | None = None
    compare_shap: bool = False

    def __post_init__(self) -> None:
        # Fail at construction with one line, not deep inside LIME with a numpy traceback.
        if not callable(self.predict):
            raise ExplainError(
                f"Subject.predict must be callable, got {type(self.predict).__name__}")
        if self.mode not in MODES:
            raise ExplainError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        self.samples = _as_samples(self.samples)
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if len(self.labels) != len(self.samples):
                raise ExplainError(
                    f"{len(self.labels)} labels for {len(self.samples)} samples")
        if self.train is not None:
            self.train = np.asarray(self.train)
        if self.true_weights is not None:
            self.true_weights = np.asarray(self.true_weights, dtype=np.float64)
        if self.image_shape is not None:
            self.image_shape = tuple(int(s) for s in self.image_shape)

    @property
    def numeric(self) -> bool:
        """False for text samples (strings), which go to `predict` as they are."""
        return self.samples.dtype.kind in "biufc"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample as the model takes it."""
        return tuple(self.samples.shape[1:])

    @property
    def input_size(self) -> int:
        """Number of values in one sample."""
        return int(np.prod(self.input_shape))

    def outputs(self, batch: np.ndarray) -> np.ndarray:
        """`predict` on a batch, checked: (N, C) for classification, (N,) for regression."""
        if self.numeric:
            batch = np.asarray(batch, dtype=np.float32)
        out = np.asarray(self.predict(batch))
        n = len(batch)
        if self.mode == "regression":
            if out.ndim == 2 and out.shape[1] == 1:
                out = out[:, 0]
            if out.shape != (n,):
                raise ExplainError(
                    f"in regression mode predict must return shape ({n},) for {n} inputs; "
                    f"got {out.shape}")
        elif out.ndim != 2 or out.shape[0] != n:
            raise ExplainError(
                f"predict must return (N, C) class probabilities for N={n} inputs; "
                f"got shape {out.shape} (use mode='regression' for one value per input)")
        return out.astype(np.float64, copy=False)

    def class_name(self, c: int | None) -> str | None:
        """Name of class `c` (its index as text when no names were given)."""
        if c is None:
            return None
        if self.class_names is not None and 0 <= c < len(self.class_names):
            return str(self.class_names[c])
        return str(c)

    def label(self, i: int):
        """True label of sample i as a plain Python value (None when unknown)."""
        if self.labels is None:
            return None
        v = self.labels[i]
        return v.item() if isinstance(v, np.generic) else v


def _as_samples(samples) -> np.ndarray:
    """The samples as one array: numeric (n, *input_shape), or 1-D strings (n,) for text."""
    if isinstance(samples, (str, bytes)):
        raise ExplainError("samples must be a batch: a list of strings, not one string")
    try:
        arr = np.asarray(samples)
    except (TypeError, ValueError):  # ragged nested lists (numpy >= 1.24 refuses them)
        raise ExplainError("samples have different lengths: numeric samples must all have one "
                           "shape (pad or resize them)") from None
    if arr.ndim == 0 or len(arr) == 0:
        raise ExplainError(f"samples must be a non-empty batch; got shape {arr.shape}")
    if arr.dtype.kind in "biufc":
        if arr.ndim < 2:
            raise ExplainError(f"numeric samples must be a batch of shape (n, *input_shape); "
                               f"got shape {arr.shape} (one row? use samples[None])")
        return arr
    if arr.dtype.kind in "US" and arr.ndim == 1:
        return arr.astype(object)  # Python strings: no fixed-width truncation later
    if arr.dtype.kind == "O" and arr.ndim == 1:
        kinds = {type(v).__name__ for v in arr if not isinstance(v, (str, bytes))}
        if not kinds:
            return arr
        raise ExplainError(f"samples must be numeric arrays of one shape, or strings; these "
                           f"hold {', '.join(sorted(kinds))} (ragged inputs?)")
    raise ExplainError(f"samples must be numeric, or a 1-D batch of strings; got dtype "
                       f"{arr.dtype} and shape {arr.shape}")
