"""Policy explanations: `policy_subject` over a policy whose answer is known, KernelSHAP beside
LIME (`explain.shap`, `Subject.compare_shap`), and the aggregate "which features drive which
action" figure and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

import explain
from agents.common import CARTPOLE_ACTIONS, CARTPOLE_FEATURES
from agents.policy import aggregate, aggregate_figure, policy_subject
from explain import shap

# A CartPole-like policy that pushes towards the side the pole falls to: only the pole angle
# (strongly) and its angular velocity (weakly) matter; the cart's position and velocity do not.
W = np.array([0.0, 0.0, 30.0, 3.0])


def push(states: np.ndarray) -> np.ndarray:
    z = np.asarray(states, dtype=np.float64) @ W
    p_right = 1 / (1 + np.exp(-z))
    return np.stack([1 - p_right, p_right], axis=1)


def states(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, [0.5, 0.5, 0.05, 0.3], size=(n, 4)).astype(np.float32)


def test_policy_subject_is_tabular_over_the_rollout_states():
    s = states(50)
    subject = policy_subject(push, s, CARTPOLE_FEATURES, CARTPOLE_ACTIONS)
    assert subject.kind == "tabular" and subject.mode == "classification"
    assert subject.compare_shap and subject.class_names == CARTPOLE_ACTIONS
    np.testing.assert_array_equal(subject.samples, s)
    np.testing.assert_array_equal(subject.train, s)


def test_lime_and_kernelshap_both_find_the_pole_angle_and_agree(tmp_path):
    subject = policy_subject(push, states(), CARTPOLE_FEATURES, CARTPOLE_ACTIONS)
    report = explain.explain(subject, tmp_path, n=5, num_samples=1000)
    for e in report.explanations:
        assert e.ranked()[0][0] == "pole angle"  # the steepest slope per training std
        # in this state, relative to the mean state: the same feature leads for both
        phi = np.abs(e.arrays["shap"])
        lime = np.abs(shap.lime_contributions(subject, e, subject.samples[e.index]))
        assert np.argmax(phi) == np.argmax(lime) and np.argmax(phi) in (2, 3)
        assert phi[:2].max() < 0.05 * phi.max()  # the unused features get ~nothing
    # the two unused features tie in truth and LIME orders them by noise: rho 0.8 or 1
    assert report.summary["explain_shap_rank_corr"] >= 0.8 - 1e-9
    sample = json.loads((tmp_path / "sample_0.json").read_text())
    assert sample["shap"]["rank_corr"] >= 0.8 - 1e-9
    assert list(sample["shap"]["weights"]) == CARTPOLE_FEATURES
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["summary"]["explain_shap_rank_corr"] == pytest.approx(
        report.summary["explain_shap_rank_corr"])
    assert "shap" in saved["explanations"][0]


def test_kernelshap_is_exact_on_a_linear_model():
    """For a linear model and one baseline, the Shapley value of feature j is
    w_j * (x_j - baseline_j): KernelSHAP over 4 features must find it."""
    w = np.array([2.0, -1.0, 0.5, 0.0])
    train = states(100, seed=1).astype(np.float64)
    subject = explain.Subject("tabular", lambda x: np.asarray(x) @ w, train[:3], train=train,
                              mode="regression", compare_shap=True)
    row = train[0]
    phi = shap.kernel_shap(subject, row, None, seed=0)
    np.testing.assert_allclose(phi, w * (row - train.mean(0)), atol=1e-4)


def test_compare_shap_is_off_by_default_and_refused_off_tabular(tmp_path):
    subject = explain.Subject("tabular", push, states(20), train=states(20))
    report = explain.explain(subject, tmp_path, n=1, num_samples=200)
    assert "explain_shap_rank_corr" not in report.summary
    assert "shap" not in json.loads((tmp_path / "sample_0.json").read_text())


def test_aggregate_says_which_features_drive_which_action():
    subject = policy_subject(push, states(40), CARTPOLE_FEATURES, CARTPOLE_ACTIONS)
    report = explain.explain(subject, None, indices=range(40), num_samples=300)
    agg = aggregate(report.explanations, subject)
    assert agg["features"] == CARTPOLE_FEATURES
    assert sum(a["states"] for a in agg["actions"].values()) == 40
    right, left = agg["actions"]["push right"], agg["actions"]["push left"]
    # a larger pole angle makes "push right" likelier and "push left" less likely
    assert right["lime_mean"]["pole angle"] > 0 > left["lime_mean"]["pole angle"]
    for a in (right, left):
        top = max(a["shap_mean_abs"], key=a["shap_mean_abs"].get)
        assert top == "pole angle"
    fig = aggregate_figure(agg)
    assert len(fig.axes) >= 2
