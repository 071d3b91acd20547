"""Tests of the moons-mlp lab, as a plugin author writes them: a smoke test with a tiny config
and a learning check. The package must be installed (`pip install -e .`) for `run` to find it."""

import json

import pytest

from labs import run


def test_smoke(tmp_path):
    result = run("moons-mlp", track=False, runs_dir=tmp_path, progress=False, epochs=2,
                 n_samples=100, explain=False)
    assert 0.0 <= result.metrics["test_acc"] <= 1.0
    assert (result.dir / "figures" / "decision_boundary.png").is_file()
    assert json.loads((result.dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_learns_the_curved_border_and_explains_it(tmp_path):
    result = run("moons-mlp", track=False, runs_dir=tmp_path, progress=False,
                 explain_num_samples=300)
    assert result.metrics["test_acc"] >= 0.9
    probs = [json.loads((result.dir / "explanations" / f"sample_{i}.json").read_text())
             ["probability"] for i in range(3)]
    assert probs == sorted(probs)  # the least certain points are explained first
