"""The worked-by-hand labs: `backprop-worked` pins the published numbers of the classic 2-2-2
example; `rnn-scratch` checks its hand-written backpropagation through time against autograd,
that it learns, and that the gradient vanishes over long sequences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labs import run
from supervised import backprop_worked as bw
from supervised import rnn_scratch as rs


def test_the_worked_labs_are_registered():
    from labs.registry import discover

    expected = {"backprop-worked": "supervised.backprop_worked:BackpropWorked",
                "rnn-scratch": "supervised.rnn_scratch:RNNScratch"}
    labs = discover().labs
    assert {n: labs[n].entry_point for n in expected if n in labs} == expected


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


# -- rnn-scratch -----------------------------------------------------------------------------

def _random_problem(radius=1.0, T=7, B=3, seed=0):
    text = rs.Text("backpropagation through time ")
    rng = np.random.default_rng(seed)
    p = rs.init_params(text.vocab, 10, radius, rng)
    p["b"], p["c"] = rng.normal(0, 0.5, p["b"].shape), rng.normal(0, 0.5, p["c"].shape)
    xs, targets = text.batch(rng.integers(0, len(text.ids), B), T)
    h0 = rng.normal(0, 0.5, (B, 10))  # a state carried in: the h_0 path is exercised too
    return text, p, xs, targets, h0


@pytest.mark.parametrize("radius", [0.5, 1.0, 3.0])
def test_hand_bptt_matches_autograd(radius):
    _, p, xs, targets, h0 = _random_problem(radius)
    hand = rs.backward(p, rs.forward(p, xs, h0), targets)
    auto, _ = rs.autograd_gradients(p, xs, targets, h0)
    assert hand.keys() == auto.keys() == {"U", "W", "V", "b", "c"}
    for k in hand:
        assert hand[k].shape == p[k].shape
        assert np.max(np.abs(hand[k] - auto[k])) < 1e-6, k
        assert np.abs(hand[k]).max() > 1e-4, k  # a real gradient, not two zeros agreeing


def test_hand_bptt_loss_and_gradient_through_time_match_autograd():
    import torch
    import torch.nn.functional as F

    _, p, xs, targets, h0 = _random_problem(1.0, T=12, B=1)
    cache = rs.forward(p, xs, h0)
    pt = {k: torch.tensor(v) for k, v in p.items()}
    h, logits = torch.tensor(h0), []
    for x in torch.tensor(xs):
        h = torch.tanh(x @ pt["U"].T + h @ pt["W"].T + pt["b"])
        logits.append(h @ pt["V"].T + pt["c"])
    expected = F.cross_entropy(torch.cat(logits), torch.tensor(targets).reshape(-1))
    assert rs.loss(cache, targets) == pytest.approx(float(expected), abs=1e-12)
    dy = cache["probs"][-1].copy()
    dy[0, targets[-1, 0]] -= 1
    by_hand = rs.gradient_through_time(p, cache["hs"], dy @ p["V"])
    _, by_autograd = rs.autograd_gradients(p, xs, targets, h0)
    assert len(by_hand) == 12
    np.testing.assert_allclose(by_hand, by_autograd, rtol=1e-9)


def test_the_gradient_vanishes_geometrically_with_small_recurrent_weights():
    text = rs.Text("hello world ")
    p = rs.init_params(text.vocab, 32, 0.5, np.random.default_rng(0))
    norms = rs.vanishing(p, text, 60)
    assert norms[30] / norms[0] < 1e-3
    # geometric: every 10 steps back cost the same large factor, all the way
    assert all(norms[k + 10] / norms[k] < 1e-2 for k in range(0, 50, 10))
    # with a large W it does not vanish (it grows): the lesson is about the recurrent weights
    big = rs.init_params(text.vocab, 32, 3.0, np.random.default_rng(0))
    grown = rs.vanishing(big, text, 60)
    assert grown[30] / grown[0] > 1.0


def test_clipping_scales_the_whole_gradient_to_the_limit():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert rs.clip_(g, 1.0) == pytest.approx(5.0)
    assert np.sqrt(np.sum(g["a"] ** 2) + np.sum(g["b"] ** 2)) == pytest.approx(1.0)
    assert g["a"][0] == pytest.approx(0.6)
    g = {"a": np.array([3.0, 4.0])}
    rs.clip_(g, 0.0)  # off
    assert g["a"].tolist() == [3.0, 4.0]


def test_rnn_scratch_lab_learns_and_plots_the_vanishing_gradient():
    res = run("rnn-scratch", steps=300, track=False)
    m = res.metrics
    assert m["initial_loss"] == pytest.approx(np.log(8), rel=0.1)  # 8 characters: a guess
    assert m["final_loss"] < 0.1 * m["initial_loss"]
    assert m["loss_floor"] < m["final_loss"] < 3 * m["loss_floor"]
    assert m["next_char_acc"] > 0.95
    assert m["max_diff_vs_autograd"] < 1e-6
    assert m["grad_30_back_ratio"] < 1e-3
    assert {"loss.png", "vanishing_gradient.png"} <= {p.name for p in
                                                      (res.dir / "figures").iterdir()}
    saved = json.loads((res.dir / "rnn.json").read_text())
    assert saved["generated"].startswith("hello world hello")
    assert len(saved["grad_norm_vs_steps_back"]["trained"]) == 60
    table = json.loads((res.dir / "gradient_check.table.json").read_text())
    assert [r[0] for r in table["rows"]] == ["U", "W", "V", "b", "c"]
    assert all(max(r[2:]) < 1e-6 for r in table["rows"])  # at init and after training
    rows = [json.loads(line) for line in (res.dir / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "loss" in r]
    assert [r["step"] for r in logged][:2] == [1, 25] and logged[-1]["step"] == 300
    assert {r["axis"] for r in logged} == {"step"} and "grad_norm" in logged[0]
    assert not any((res.dir / "explanations").iterdir())


def test_rnn_scratch_refuses_a_text_with_nothing_to_predict(cli):
    code, _, err = cli("run", "rnn-scratch", "--set", "text=aaaa", "--no-track")
    assert code == 2 and "text" in err and err.count("\n") == 1


def test_lab_run_prints_small_numbers_with_their_digits(cli):
    code, out, _ = cli("run", "backprop-worked", "--no-track")
    assert code == 0
    assert "final_error              3.511e-05" in out  # not 0.0000
    assert "error                    0.2984" in out  # numbers of a usual size: as before
    code, out, _ = cli("runs")
    assert "final_error=3.511e-05" in out
