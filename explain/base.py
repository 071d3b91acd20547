"""The explainer contract, the per-sample result, and the registry of explainer kinds.

Adding a kind (text, timeseries, policy) is one small module:

    @register("text")
    class TextExplainer(Explainer):
        options = {**Explainer.options, "mask_token": "[UNK]"}
        def explain_one(self, subject, i, seed, num_samples) -> Explanation: ...
        def figure(self, subject, explanation) -> matplotlib.figure.Figure: ...

plus one import line in `explain/__init__.py` (or the plugin's own import) so it registers.
`explain_one` runs LIME for sample i and fills an `Explanation`, using the shared helpers in
`explain.fidelity` (deletion test on a feature map, rank correlation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from explain.errors import ExplainError
from explain.fidelity import choose_k
from explain.jsonsafe import jsonable as _plain  # one JSON rule for explain and labs
from explain.subject import Subject

_REGISTRY: dict[str, type[Explainer]] = {}


def register(kind: str):
    """Class decorator: make `cls` the explainer for `Subject(kind=kind)`."""
    def deco(cls: type[Explainer]) -> type[Explainer]:
        old = _REGISTRY.get(kind)
        if old is not None and old is not cls:
            raise ValueError(f"explainer kind {kind!r} is registered twice: "
                             f"{old.__module__}.{old.__qualname__} and "
                             f"{cls.__module__}.{cls.__qualname__}")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls
    return deco


def explainer_kinds() -> list[str]:
    """Registered explainer kinds, sorted."""
    return sorted(_REGISTRY)


def get_explainer(kind: str) -> type[Explainer]:
    """The explainer class for `kind`; ExplainError naming the known kinds otherwise."""
    try:
        return _REGISTRY[kind]
    except (KeyError, TypeError):
        raise ExplainError(f"no explainer for kind {kind!r}; known kinds: "
                           f"{', '.join(explainer_kinds())}") from None


@dataclass
class Explanation:
    """LIME's explanation of one sample, with its fidelity numbers.

    weights: {feature or segment name: LIME weight} for the explained output, in feature order.
    score: LIME's local R^2 of its linear surrogate (explanation.score).
    probability: the model's probability of the explained class (regression: predicted value).
    deletion_top / deletion_random: drop of that output when LIME's top-k / k random features
        are set to the baseline (random: mean over `deletion_draws` draws); in regression the
        absolute change of the value (see `explain.fidelity.deletion_test`).
    rank_corr: Spearman correlation with the subject's true_weights (None when not given or
        undefined).
    arrays: what the figure needs (e.g. the segment map); not written to JSON.
    """

    index: int
    kind: str
    label: Any
    predicted: int | None
    explained_class: int | None
    class_name: str | None
    probability: float
    weights: dict[str, float]
    intercept: float
    score: float
    local_pred: float
    deletion_k: int
    deletion_top: float
    deletion_random: float
    deletion_features: list[str]
    rank_corr: float | None = None
    png: Path | None = None
    json: Path | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def ranked(self) -> list[tuple[str, float]]:
        """(feature, weight) pairs, largest |weight| first."""
        return sorted(self.weights.items(), key=lambda kv: -abs(kv[1]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of everything except `arrays` (nan becomes null)."""
        return {
            "index": self.index, "kind": self.kind, "label": _plain(self.label),
            "predicted": self.predicted, "explained_class": self.explained_class,
            "class_name": self.class_name, "probability": _plain(self.probability),
            "weights": {k: _plain(v) for k, v in self.weights.items()},
            "intercept": _plain(self.intercept), "score": _plain(self.score),
            "local_pred": _plain(self.local_pred),
            "deletion": {"measure": "drop" if self.explained_class is not None else "abs_change",
                         "k": self.deletion_k, "top": _plain(self.deletion_top),
                         "random": _plain(self.deletion_random),
                         "features": list(self.deletion_features)},
            "rank_corr": _plain(self.rank_corr),
            "png": _plain(self.png), "json": _plain(self.json),
        }


class Explainer:
    """Base of every explainer kind. Subclasses set `options` (name -> default), and implement
    `explain_one` and `figure`; `prepare` validates a subject once before a run."""

    kind: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {
        "deletion_k": None,      # features removed by the deletion test; None: deletion_frac
        "deletion_frac": 0.2,    # ... of the features (>= 1): enough to matter, few enough to rank
        "deletion_draws": 10,    # random k-feature draws averaged for the baseline drop
    }

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ExplainError(
                f"unknown option(s) {', '.join(unknown)} for the {self.kind!r} explainer; "
                f"valid: {', '.join(sorted(self.options))}")
        self.opts: dict[str, Any] = {**self.options, **options}

    def prepare(self, subject: Subject) -> None:
        """Check the subject once (ExplainError with one clear line); cache per-run data."""

    def explain_one(self, subject: Subject, i: int, seed: int, num_samples: int) -> Explanation:
        """Explain sample i with a fresh LIME explainer seeded with `seed`."""
        raise NotImplementedError

    def figure(self, subject: Subject, explanation: Explanation):
        """A matplotlib.figure.Figure of the explanation (no pyplot, no global backend)."""
        raise NotImplementedError

    def save_extras(self, explanation: Explanation, stem: Path) -> dict[str, Path]:
        """Write files beyond the PNG and JSON (e.g. an HTML view) as `<stem>.<ext>`; returns
        them by kind. Called by `explain()` when it writes figures; the default writes none."""
        return {}

    # -- helpers shared by the kinds --------------------------------------------------------
    def deletion_k(self, n_features: int) -> int:
        return choose_k(n_features, self.opts["deletion_k"], self.opts["deletion_frac"])

    @staticmethod
    def target(subject: Subject, out: np.ndarray) -> tuple[int | None, float]:
        """The explained class (the model's argmax) and its probability for one output row;
        (None, value) in regression mode."""
        if subject.mode == "regression":
            return None, float(out)
        c = int(np.argmax(out))
        return c, float(out[c])
