"""The worked-by-hand labs: `backprop-worked` pins the published numbers of the classic 2-2-2
example; `rnn-scratch` checks its hand-written backpropagation through time against autograd,
that it learns, and that the gradient vanishes over long sequences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from plugin_helpers import ROOT, make_dist

from labs import run
from supervised import backprop_worked as bw

try:
    import tomllib
except ImportError:  # Python 3.10: the backport is a dependency there
    import tomli as tomllib

WORKED = ("backprop-worked", "rnn-scratch")


def _registered() -> dict[str, str]:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    return {name: value for name, value in table["labs"].items() if name in WORKED}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A stale editable install predates these entry points: register the ones it lacks (from
    pyproject.toml) under a stand-in distribution; a fresh install needs none."""
    from labs.registry import discover

    path = tmp_path_factory.mktemp("site")
    missing = {k: v for k, v in _registered().items() if k not in discover().labs}
    if missing:
        make_dist(path, "lab-worked-dev", missing)
    return path


@pytest.fixture(autouse=True)
def worked_labs(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))


def test_the_worked_labs_are_registered():
    assert _registered() == {"backprop-worked": "supervised.backprop_worked:BackpropWorked",
                             "rnn-scratch": "supervised.rnn_scratch:RNNScratch"}


# -- backprop-worked -------------------------------------------------------------------------

# the published values of the worked example, to the digits it prints
UPDATED = {"w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
           "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121}


def test_forward_pass_and_error_match_the_published_numbers():
    f = bw.forward(bw.WEIGHTS)
    assert f["net_h1"] == pytest.approx(0.3775, abs=1e-12)
    assert f["out_h1"] == pytest.approx(0.593269992, abs=5e-10)
    assert f["out_h2"] == pytest.approx(0.596884378, abs=5e-10)
    assert f["out_o1"] == pytest.approx(0.75136507, abs=5e-9)
    assert f["out_o2"] == pytest.approx(0.772928465, abs=5e-10)
    assert f["E"] == pytest.approx(0.298371109, abs=5e-10)


def test_backward_pass_matches_the_published_partials_and_autograd():
    w = dict(bw.WEIGHTS)
    partials = bw.backward(w, bw.forward(w))
    value = {k: v for k, (_, v) in partials.items()}
    assert value["dE/dout_o1"] == pytest.approx(0.74136507, abs=5e-9)
    assert value["dout_o1/dnet_o1"] == pytest.approx(0.186815602, abs=5e-10)
    assert value["dE/dw5"] == pytest.approx(0.082167041, abs=5e-10)
    assert value["dE/dout_h1"] == pytest.approx(0.036350306, abs=5e-10)
    assert value["dout_h1/dnet_h1"] == pytest.approx(0.241300709, abs=5e-10)
    assert value["dE/dw1"] == pytest.approx(0.000438568, abs=5e-10)
    auto = bw.autograd_partials(w)
    assert auto.keys() == value.keys()  # every hand partial has its autograd twin
    assert max(abs(value[k] - auto[k]) for k in value) < 1e-12


def test_one_step_gives_the_published_weights():
    w = dict(bw.WEIGHTS)
    new = bw.step(w, bw.gradient(bw.backward(w, bw.forward(w))), 0.5)
    for k, published in UPDATED.items():
        assert new[k] == pytest.approx(published, abs=5e-9), k


def test_ten_thousand_steps_reach_the_published_error():
    _, errors = bw.train(dict(bw.WEIGHTS), 0.5, 10_000)
    assert errors[0, 0] == pytest.approx(0.298371109, abs=5e-10)
    assert errors[-1, 0] == pytest.approx(0.0000351085, abs=5e-11)
    assert np.all(np.diff(errors[:, 0]) < 0)  # a small enough step: E falls every step


def test_backprop_worked_lab_writes_its_tables_json_and_figures():
    res = run("backprop-worked", track=False)
    m = res.metrics
    assert m["error"] == pytest.approx(0.298371109, abs=5e-10)
    assert m["dE_dw5"] == pytest.approx(0.082167041, abs=5e-10)
    assert m["w5_after_one_step"] == pytest.approx(0.35891648, abs=5e-9)
    assert m["w1_after_one_step"] == pytest.approx(0.14978072, abs=5e-9)
    assert m["final_error"] == pytest.approx(0.0000351085, abs=5e-11)
    assert m["max_diff_vs_autograd"] < 1e-12
    table = json.loads((res.dir / "partials.table.json").read_text())
    assert table["columns"] == ["partial", "chain rule", "by hand", "autograd", "abs diff"]
    assert len(table["rows"]) == 24 and all(r[4] < 1e-12 for r in table["rows"])
    saved = json.loads((res.dir / "backprop.json").read_text())
    assert saved["weights_after_one_step"]["w8"] == pytest.approx(0.561370121, abs=5e-9)
    assert saved["partials"]["dE/dw5"]["chain_rule"] == "dE/dnet_o1 * out_h1"
    rows = [json.loads(line) for line in (res.dir / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "error" in r]
    assert [r["step"] for r in logged][:3] == [1, 100, 200] and logged[-1]["step"] == 10_000
    assert {r["axis"] for r in logged} == {"step"}
    assert {"error.png", "network.png"} <= {p.name for p in (res.dir / "figures").iterdir()}
    assert not any((res.dir / "explanations").iterdir())  # nothing to explain


def test_backprop_worked_config_changes_the_run():
    m = run("backprop-worked", steps=10, lr=1.0, log_every=5, track=False).metrics
    assert m["w5_after_one_step"] == pytest.approx(0.40 - 0.082167041, abs=5e-9)
    assert 0.1 < m["final_error"] < 0.298371109  # 10 steps: not far down yet
