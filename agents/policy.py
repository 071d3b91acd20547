"""Explaining a policy: which observation features make the agent choose its action.

A policy is explained like a tabular classifier: its input is the observation (CartPole: cart
position, cart velocity, pole angle, pole angular velocity), its output the probability of each
action (a DQN's Q-values through a softmax), and the states explained are sampled from the
agent's own greedy rollouts -- the states it really visits, not random points of the
observation space. LIME explains the chosen action's probability in each state (one figure per
state, written by the framework's tabular explainer, with the deletion-style fidelity number);
KernelSHAP explains it too (`compare_shap`) and the rank agreement of the two is reported, so a
user sees when LIME is off; and `explain_policy` explains many states at once for the
aggregate "which features drive which action" figure.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ROLLOUT_SEED_OFFSET = 20_000  # explained states come from episodes of their own seeds
SHAP_WARN_BELOW = 0.5  # mean LIME-vs-SHAP rank agreement under which the user is told


def policy_subject(predict: Callable[[np.ndarray], np.ndarray], states: np.ndarray,
                   feature_names: Sequence[str], action_names: Sequence[str] | None = None,
                   mode: str = "classification"):
    """An `explain.Subject` (kind "tabular") for a policy.

    predict: (N, n_features) observations -> (N, n_actions) action probabilities
        (classification), or (N,) values (regression: a continuous action such as a torque).
    states: (n, n_features) observations from the agent's own rollouts: the rows explained (in
        this order) and the statistics LIME perturbs with (and the deletion baseline: their
        mean).
    KernelSHAP is compared with LIME on every explained state (`compare_shap=True`).
    """
    from explain import Subject

    states = np.asarray(states, dtype=np.float32)
    return Subject(kind="tabular", predict=predict, samples=states, train=states,
                   class_names=None if action_names is None else list(action_names),
                   feature_names=list(feature_names), mode=mode, compare_shap=True)


def rollout_states(policy: Any, env_id: str, n: int, seed: int, device: Any = "cpu",
                   episodes: int = 5) -> np.ndarray:
    """Up to `n` states the greedy policy visits in `episodes` seeded episodes, a seeded random
    subset in random order (so the first few explained are not all from one episode's start)."""
    from agents.common import greedy_episodes

    _, _, states = greedy_episodes(policy, env_id, episodes, seed + ROLLOUT_SEED_OFFSET,
                                   device, keep_states=True)
    keep = np.random.default_rng(seed).permutation(len(states))[:n]
    return states[keep]


def explain_policy(run: Any, subject: Any, cfg: Any) -> dict[str, float]:
    """LIME (and KernelSHAP) over every state of `subject`: the aggregate figure
    `figures/policy_features.png`, `explanations/policy_features.json`, and the numbers
    `policy_explained_states`, `policy_shap_rank_corr` (mean LIME-vs-SHAP agreement)."""
    import json

    import explain

    report = explain.explain(subject, None, indices=range(len(subject.samples)),
                             num_samples=cfg.explain_num_samples, seed=cfg.seed)
    agg = aggregate(report.explanations, subject)
    run.figure("policy_features", aggregate_figure(agg))
    out = run.dir / "explanations" / "policy_features.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(agg, indent=2, allow_nan=False))
    rho = report.summary.get("explain_shap_rank_corr", float("nan"))
    if np.isfinite(rho) and rho < SHAP_WARN_BELOW:
        print(f"note: LIME and KernelSHAP rank this policy's features differently (mean "
              f"Spearman {rho:.2f} over {len(subject.samples)} states): read LIME's ranking "
              f"with care", file=sys.stderr)
    return {"policy_explained_states": float(len(subject.samples)),
            "policy_shap_rank_corr": rho, "policy_lime_r2": report.summary["explain_r2"]}


def aggregate(explanations: list, subject: Any) -> dict[str, Any]:
    """Per chosen action: how many states chose it, and per feature the mean LIME weight (slope
    per training std) and, in the same units, mean |LIME contribution| (slope x the state's
    distance from the mean state) and mean |SHAP value| for that action's probability."""
    from explain.shap import lime_contributions

    features = list(next(iter(explanations)).weights)
    actions: dict[str, dict[str, Any]] = {}
    for e in explanations:
        name = e.class_name if e.class_name is not None else "value"
        a = actions.setdefault(name, {"states": 0, "lime": [], "contrib": [], "shap": []})
        a["states"] += 1
        a["lime"].append(list(e.weights.values()))
        a["contrib"].append(lime_contributions(subject, e, subject.samples[e.index]))
        if "shap" in e.arrays:
            a["shap"].append(np.asarray(e.arrays["shap"]).tolist())
    out: dict[str, Any] = {"features": features, "actions": {}}
    for name, a in sorted(actions.items()):
        lime = np.asarray(a["lime"])
        entry = {"states": a["states"],
                 "lime_mean": dict(zip(features, lime.mean(0).round(6).tolist())),
                 "lime_mean_abs": dict(zip(features, np.abs(lime).mean(0).round(6).tolist())),
                 "lime_contribution_mean_abs": dict(zip(features, np.abs(np.asarray(
                     a["contrib"])).mean(0).round(6).tolist()))}
        if a["shap"]:
            entry["shap_mean_abs"] = dict(zip(features, np.abs(np.asarray(a["shap"]))
                                              .mean(0).round(6).tolist()))
        out["actions"][name] = entry
    return out


def aggregate_figure(agg: dict[str, Any]):
    """Left: mean LIME weight of each feature for each chosen action (green: raises that
    action's probability). Right: the share of each feature in mean |LIME contribution| and
    mean |SHAP value| over all states (the same units: what the feature adds at the state)."""
    from matplotlib.figure import Figure

    features, actions = agg["features"], list(agg["actions"])
    grid = np.array([[agg["actions"][a]["lime_mean"][f] for f in features] for a in actions])
    counts = [agg["actions"][a]["states"] for a in actions]
    fig = Figure(figsize=(11, 1.2 + 0.9 * max(2, len(actions))), layout="constrained")
    ax, bx = fig.subplots(1, 2, width_ratios=[1.4, 1])
    lim = float(np.abs(grid).max()) or 1.0
    im = ax.imshow(grid, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:+.3f}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(features)), features, rotation=15, fontsize=8)
    ax.set_yticks(range(len(actions)), [f"{a}\n({n} states)" for a, n in zip(actions, counts)],
                  fontsize=8)
    ax.set_title("mean LIME weight on the chosen action's probability\n(green: the feature "
                 "rising makes the action more likely)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    total = sum(counts)
    lime_abs = sum(np.array([agg["actions"][a]["lime_contribution_mean_abs"][f]
                             for f in features]) * n for a, n in zip(actions, counts)) / total
    x = np.arange(len(features))
    bx.bar(x - 0.2, lime_abs / (lime_abs.sum() or 1), 0.4, label="LIME |contribution|")
    if all("shap_mean_abs" in agg["actions"][a] for a in actions):
        shap_abs = sum(np.array([agg["actions"][a]["shap_mean_abs"][f] for f in features]) * n
                       for a, n in zip(actions, counts)) / total
        bx.bar(x + 0.2, shap_abs / (shap_abs.sum() or 1), 0.4, label="KernelSHAP |value|")
    bx.set_xticks(x, features, rotation=15, fontsize=8)
    bx.set(ylabel="share of importance", title=f"feature importance over {total} states")
    bx.legend(fontsize=8)
    return fig
