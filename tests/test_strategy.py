"""ml-strategy: learning curves, the bias/variance and mismatch tables, and logistic regression
with loops vs vectorized."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labs import run
from supervised.ml_strategy import diagnose, logreg_loops, logreg_vectorized, mismatch_diagnosis


def test_loops_and_vectorized_logistic_regression_agree():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 40))
    Y = (X[0:1] + 0.5 * X[1:2] > 0).astype(float)
    w_loop, b_loop = logreg_loops(X, Y, 30, 0.3)
    w_vec, b_vec = logreg_vectorized(X, Y, 30, 0.3)
    assert w_loop.shape == w_vec.shape == (5, 1)
    np.testing.assert_allclose(w_loop, w_vec, atol=1e-12)
    assert b_loop == pytest.approx(b_vec, abs=1e-12)
    assert w_vec[0, 0] > w_vec[1, 0] > abs(w_vec[2, 0])  # it learned the rule
    # one step from w = b = 0: dw = X (A - Y)^T / m with A = 1/2
    w1, b1 = logreg_vectorized(X, Y, 1, 1.0)
    np.testing.assert_allclose(w1, -(X @ (0.5 - Y).T) / 40)
    assert b1 == pytest.approx(-float((0.5 - Y).sum()) / 40)


@pytest.mark.parametrize("human, train, dev, word", [
    (0.01, 0.15, 0.16, "avoidable bias"), (0.01, 0.02, 0.12, "variance"),
    (0.01, 0.012, 0.015, "near")])
def test_diagnosis(human, train, dev, word):
    what, remedy = diagnose(human, train, dev)
    assert what.startswith(word) and remedy


def test_mismatch_diagnosis():
    assert mismatch_diagnosis(0.01, 0.02, 0.20)[0].startswith("data mismatch")
    assert mismatch_diagnosis(0.01, 0.10, 0.11)[0].startswith("variance")


def test_smoke(tmp_path):
    res = run("ml-strategy", track=False, progress=False, runs_dir=tmp_path, sizes=[30, 120],
              steps=40, large=[64], logreg_iters=2)
    m = res.metrics
    assert m["logreg_max_abs_diff"] < 1e-9 and m["logreg_speedup"] > 1
    assert 0 <= m["human_proxy_error"] <= 1
    assert m["mismatch_dev_error"] > m["mismatch_train_dev_error"]  # the shifted, noisy dev set
    assert (res.dir / "figures" / "learning_curves.png").is_file()
    table = (res.dir / "bias_variance.txt").read_text().splitlines()
    assert table[0].split()[:4] == ["model", "human_proxy_error", "train_error", "dev_error"]
    assert len(table) == 1 + 6 and "small net, 30 digits" in table[1]
    assert "mismatch" in (res.dir / "mismatch.txt").read_text()
    curves = json.loads((res.dir / "learning_curves.table.json").read_text())
    assert {row[0] for row in curves["rows"]} == {"small", "medium", "large", "svm"}
    assert set(res.models) == {"small", "medium", "large"}


@pytest.mark.slow
def test_more_data_helps_and_the_diagnoses_follow(tmp_path):
    res = run("ml-strategy", track=False, progress=False, runs_dir=tmp_path,
              sizes=[50, 1250], small=[2], logreg_iters=5)
    m = res.metrics
    assert m["large_dev_acc"] >= 0.93 and m["svm_dev_acc"] >= 0.95
    assert m["large_dev_acc"] > m["small_dev_acc"]
    rows = (res.dir / "bias_variance.txt").read_text().splitlines()[1:]
    small_full = next(r for r in rows if r.startswith("small net, 1250"))
    large_few = next(r for r in rows if r.startswith("large net, 50"))
    assert "avoidable bias (" in small_full and "bigger network" in small_full  # 2 units
    assert "variance (" in large_few and "more data" in large_few
    assert m["mismatch_dev_error"] - m["mismatch_train_dev_error"] > 0.05
