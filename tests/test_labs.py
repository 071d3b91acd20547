"""Each built-in lab: a smoke run with a tiny config, and `slow` checks that it really learns."""

from __future__ import annotations

import json

import pytest

from labs import run


def _files(res, sub):
    return sorted(p.name for p in (res.dir / sub).rglob("*") if p.is_file())


def test_perceptron_gates_smoke():
    res = run("perceptron-gates", epochs=10, explain_num_samples=200, track=False)
    m = res.metrics
    assert m["gates_learned"] == 4.0
    assert m["acc_XOR"] < 1.0  # not linearly separable
    assert m["mcp_acc_AND"] == m["mcp_acc_OR"] == 1.0
    assert "decision_lines.png" in _files(res, "figures")
    # one explanation folder per separable gate, with LIME vs the perceptron's own weights
    expl = _files(res, "explanations")
    assert expl.count("report.json") == 4
    assert m["explain_rank_corr"] == pytest.approx(1.0)


def test_xor_mlp_smoke():
    res = run("xor-mlp", epochs=5, explain_samples=2, explain_num_samples=200, track=False)
    assert 0.0 <= res.metrics["acc"] <= 1.0
    assert {"curves.png", "decision.png"} <= set(_files(res, "figures"))
    assert "sample_1.json" in _files(res, "explanations")
    assert "explain_r2" in res.metrics


def test_digits_mlp_smoke():
    res = run("digits-mlp", epochs=3, hidden=[32], lr=0.01, explain_samples=1,
              explain_num_samples=200, track=False)
    assert res.metrics["test_acc"] > 0.5
    report = json.loads((res.dir / "explanations" / "report.json").read_text())
    assert report["kind"] == "image" and len(report["explanations"]) == 1


def test_no_explain_skips_explanations(cli, runs_dir):
    code, _, _ = cli("run", "digits-mlp", "--epochs", "1", "--no-explain", "--no-track")
    assert code == 0
    (d,) = (runs_dir / "digits-mlp").iterdir()
    assert not any((d / "explanations").iterdir())
    assert "explain_r2" not in json.loads((d / "summary.json").read_text())["metrics"]


@pytest.mark.slow
def test_digits_mlp_reaches_97_percent_with_defaults():
    res = run("digits-mlp", track=False)
    assert res.metrics["test_acc"] >= 0.97
    # LIME's top segments matter far more to the model than random ones
    assert res.metrics["explain_deletion_ratio"] > 2.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_mlp_learns_xor_to_100_percent(seed):
    assert run("xor-mlp", seed=seed, explain=False, track=False).metrics["acc"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("lr", [0.1, 1.0])
def test_perceptron_learns_separable_gates_and_not_xor(lr):
    m = run("perceptron-gates", lr=lr, epochs=100, explain=False, track=False).metrics
    for gate in ("AND", "OR", "NAND", "NOR"):
        assert m[f"acc_{gate}"] == 1.0
    assert m["acc_XOR"] <= 0.75  # at most 3 of 4 rows: no line separates XOR
