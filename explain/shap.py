"""KernelSHAP beside LIME on tabular subjects: a second opinion that says when LIME is off.

Switched on per subject with `Subject(compare_shap=True)` (tabular kind only). For each
explained row, captum's `KernelShap` attributes the same output LIME explained (the explained
class's probability, or the value in regression) to the features, against the same baseline
the deletion test uses (`Subject.baseline`, default the training mean). Both methods are then
put in the same units -- each feature's contribution at this row relative to the baseline:
SHAP's phi_j, and LIME's slope (per training std) x the row's distance from the baseline in
stds -- and compared by the Spearman rank correlation of their absolute values
(`explain.fidelity.rank_correlation`). 1: the two rank the features alike; near 0 or below:
they disagree, and neither ranking should be taken on trust. With few features (CartPole's
4) KernelSHAP's sampled coalitions cover nearly all 2^F of them, so it is close to exact.

The sample JSON gets a `shap` entry ({"weights", "rank_corr", "n_samples"}) and the run
summary `explain_shap_rank_corr` (the mean). captum and torch are imported inside functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explain.base import Explanation
from explain.errors import ExplainError
from explain.fidelity import rank_correlation
from explain.subject import Subject


def n_samples_for(n_features: int) -> int:
    """KernelSHAP coalitions per row: every one of the 2^F when that is few, else 25 per
    feature (captum's sampling is with replacement, so a few more than 2^F)."""
    return int(min(max(4 * 2 ** n_features, 64), max(25 * n_features, 256)))


def baseline(subject: Subject) -> np.ndarray:
    """The value a removed feature takes: `subject.baseline`, else the training mean (the same
    fill the tabular explainer's deletion test uses)."""
    n = subject.samples.shape[1]
    if subject.baseline is None:
        if subject.train is None:
            raise ExplainError("compare_shap needs Subject.train or Subject.baseline")
        return np.asarray(subject.train, dtype=np.float64).mean(axis=0)
    return np.broadcast_to(np.asarray(subject.baseline, dtype=np.float64).reshape(-1),
                           (n,)).copy()


def kernel_shap(subject: Subject, row: np.ndarray, target: int | None, seed: int,
                n_samples: int | None = None) -> np.ndarray:
    """captum KernelSHAP values of one row (one per feature) for the explained output."""
    import torch
    from captum.attr import KernelShap

    row = np.asarray(row, dtype=np.float64)
    n_samples = n_samples or n_samples_for(len(row))

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = subject.outputs(x.detach().cpu().numpy())
        return torch.as_tensor(out[:, target] if target is not None else out)

    with torch.random.fork_rng(devices=[]):  # captum draws coalitions from torch's generator
        torch.manual_seed(seed)
        phi = KernelShap(forward).attribute(
            torch.as_tensor(row[None]), baselines=torch.as_tensor(baseline(subject)[None]),
            n_samples=n_samples, perturbations_per_eval=n_samples)
    return phi.detach().cpu().numpy().reshape(-1).astype(np.float64)


def lime_contributions(subject: Subject, e: Explanation, row: np.ndarray) -> np.ndarray:
    """LIME's weights as contributions relative to the baseline: slope per training std x the
    row's distance from the baseline in training stds (lime's own StandardScaler)."""
    w = np.array(list(e.weights.values()), dtype=np.float64)
    train = np.asarray(subject.train, dtype=np.float64)
    scale = train.std(axis=0)
    scale[scale == 0] = 1.0  # as sklearn's StandardScaler does
    return w * (np.asarray(row, dtype=np.float64) - baseline(subject)) / scale


def compare(subject: Subject, e: Explanation, seed: int) -> None:
    """KernelSHAP for the row and output `e` explains; stores the SHAP values and their rank
    agreement with LIME on `e.arrays` (see `json_entry`)."""
    if subject.kind != "tabular":
        raise ExplainError(f"compare_shap works on tabular subjects, not {subject.kind!r}")
    row = np.asarray(subject.samples[e.index], dtype=np.float64)
    n = n_samples_for(len(row))
    phi = kernel_shap(subject, row, e.explained_class, seed, n)
    e.arrays["shap"] = phi
    e.arrays["shap_n_samples"] = np.array(n)
    e.arrays["shap_rank_corr"] = np.array(np.nan if (r := rank_correlation(
        lime_contributions(subject, e, row), phi)) is None else r)


def json_entry(e: Explanation) -> dict[str, Any]:
    """`{"shap": {...}}` for a sample's JSON when `compare` ran on it, else `{}`."""
    if "shap" not in e.arrays:
        return {}
    rho = float(e.arrays["shap_rank_corr"])
    return {"shap": {"weights": dict(zip(e.weights, map(float, e.arrays["shap"]))),
                     "rank_corr": None if np.isnan(rho) else rho,
                     "n_samples": int(e.arrays["shap_n_samples"]),
                     "method": "captum KernelShap; rank_corr: Spearman of |LIME contribution| "
                               "vs |SHAP value|"}}


def mean_rank_corr(explanations: list[Explanation]) -> float | None:
    """Mean LIME-vs-SHAP rank agreement over the explanations compared (None if none was)."""
    rhos = [float(e.arrays["shap_rank_corr"]) for e in explanations if "shap" in e.arrays]
    if not rhos:
        return None
    finite = [r for r in rhos if np.isfinite(r)]
    return float(np.mean(finite)) if finite else float("nan")
