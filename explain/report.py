"""`Report`: the explanations of one run, their summary numbers, figures and JSON.

explain must not import wandb: `table()` returns plain (columns, rows) lists that the
framework hands to `wandb.Table(columns=..., data=...)`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explain import shap
from explain.base import Explanation
from explain.fidelity import deletion_ratio
from explain.jsonsafe import jsonable

TABLE_COLUMNS = ["index", "label", "explained_class", "class_name", "probability", "feature",
                 "weight", "rank", "score", "deletion_top", "deletion_random", "rank_corr"]


def summarize(explanations: list[Explanation], with_truth: bool) -> dict[str, float]:
    """Run-level numbers (for summary.json), all floats; nan where undefined.

    explain_r2: mean LIME local R^2.
    explain_deletion_ratio: mean top-k drop / mean random-k drop (ratio of means; nan when the
        mean random drop is ~0). explain_deletion_drop(_random): the two means themselves.
    explain_shap_rank_corr: mean Spearman agreement of LIME's and KernelSHAP's feature
        rankings (only when the subject set compare_shap; see `explain.shap`).
    explain_rank_corr: mean Spearman rank correlation over explanations where it is defined
        (only when the subject has true_weights).
    """
    tops = [e.deletion_top for e in explanations]
    rnds = [e.deletion_random for e in explanations]
    out = {
        "explain_r2": float(np.mean([e.score for e in explanations])) if explanations
        else math.nan,
        "explain_deletion_ratio": deletion_ratio(tops, rnds),
        "explain_deletion_drop": float(np.mean(tops)) if tops else math.nan,
        "explain_deletion_drop_random": float(np.mean(rnds)) if rnds else math.nan,
    }
    shap_corr = shap.mean_rank_corr(explanations)
    if shap_corr is not None:  # only when the subject asked for KernelSHAP (compare_shap)
        out["explain_shap_rank_corr"] = shap_corr
    if with_truth:
        corrs = [e.rank_corr for e in explanations if e.rank_corr is not None]
        out["explain_rank_corr"] = float(np.mean(corrs)) if corrs else math.nan
    return out


@dataclass
class Report:
    """Result of `explain()`: per-sample explanations, run summary, PNG figures by name."""

    kind: str
    explanations: list[Explanation]
    summary: dict[str, float]
    figures: dict[str, Path] = field(default_factory=dict)
    num_samples: int = 1000
    seed: int = 0
    json_path: Path | None = None

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """Long table, one row per (explanation, feature), features by |weight| within each:
        weights with the explanation's fidelity numbers repeated. Plain Python values."""
        rows = []
        for e in self.explanations:
            for rank, (feat, w) in enumerate(e.ranked(), start=1):
                rows.append([jsonable(v) for v in (
                    e.index, e.label, e.explained_class, e.class_name, e.probability, feat,
                    w, rank, e.score, e.deletion_top, e.deletion_random, e.rank_corr)])
        return list(TABLE_COLUMNS), rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (nan -> null)."""
        return {
            "kind": self.kind, "num_samples": self.num_samples, "seed": self.seed,
            "summary": {k: jsonable(v) for k, v in self.summary.items()},
            "figures": {k: str(v) for k, v in self.figures.items()},
            "explanations": [{**e.to_dict(), **shap.json_entry(e)} for e in self.explanations],
        }

    def to_json(self) -> str:
        """The report as a JSON string (strict JSON: no NaN)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)
