"""rnn-sequence: simple RNN vs LSTM vs GRU on a forecast (vs naive baselines) and on a memory
task whose answer is the first element; LIME explains a forecast in regression mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from labs import ConfigError, run
from supervised import rnn_sequence as rs

TINY = dict(lengths=[3, 6], n_seqs=120, series_len=300, epochs=2, explain_samples=1,
            explain_num_samples=40, track=False, progress=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return run("rnn-sequence", runs_dir=tmp_path_factory.mktemp("runs"), **TINY)


def test_generated_data():
    y = rs.series(200, period=24, noise=0.0, seed=0)
    x, t = rs.windows(y, 24)
    assert x.shape == (176, 24) and np.array_equal(x[5], y[5:29]) and t[5] == y[29]
    assert np.allclose(rs.series(200, 24, 0.1, seed=3), rs.series(200, 24, 0.1, seed=3))
    xm, ym = rs.memory_task(100, 7, 1.0, seed=0)
    assert xm.shape == (100, 8) and np.array_equal(xm[:, 0], 2 * ym - 1)
    assert 20 < ym.sum() < 80


def test_forecast_split_is_chronological_and_baselines_are_right():
    lab = rs.RNNSequence()
    cfg = rs.Config(series_len=400, noise=0.0, window=24, period=24)
    data = lab.data(cfg)
    assert data.feature_names[0] == "t-24" and data.feature_names[-1] == "t-1"
    # the test windows are the series' end, after every training and validation target
    n_train, n_val = len(data.train), len(data.val)
    s = rs.series(400, 24, 0.0, cfg.seed)
    first = 24 + n_train + n_val  # index in the series of the first test target
    assert np.array_equal(data.test.y.numpy(), s[first:])
    b = rs.baselines(data, cfg)
    assert b["naive"] == pytest.approx(np.mean((s[first:] - s[first - 1:-1]) ** 2))
    assert b["seasonal_naive"] == pytest.approx(np.mean((s[first:] - s[first - 24:-24]) ** 2))
    assert "seasonal_naive" not in rs.baselines(data, rs.Config(window=12, period=24))


def test_gate_bias_and_parameter_counts():
    nets = {c: rs.SequenceNet(c, 16, 2, gate_bias=1.5) for c in rs.CELLS}
    lstm = nets["lstm"].rnn
    assert torch.allclose(lstm.bias_ih_l0[16:32] + lstm.bias_hh_l0[16:32], torch.full((16,), 3.0))
    counts = {c: sum(p.numel() for p in n.rnn.parameters()) for c, n in nets.items()}
    assert counts["lstm"] == 4 * counts["rnn"] and counts["gru"] == 3 * counts["rnn"]
    assert nets["rnn"](torch.zeros(5, 9)).shape == (5, 2)
    assert rs.SequenceNet("gru", 8)(torch.zeros(5, 9)).shape == (5,)


def keep_gate_bias(net: rs.SequenceNet) -> torch.Tensor:
    """b_ih + b_hh of the second gate block: the LSTM's forget gate, the GRU's update gate."""
    h = net.rnn.hidden_size
    return (net.rnn.bias_ih_l0 + net.rnn.bias_hh_l0)[h:2 * h].detach()


def test_lstm_and_gru_keep_gates_start_from_their_own_bias():
    # the LSTM's forget gate starts at sigmoid(2 + 2) ~ 0.98 (a ~50-step memory); the GRU's
    # update gate, which also mutes what is written, at sigmoid(1 + 1)
    models = rs.RNNSequence().model(rs.Config(lengths=[5], hidden=8), None)
    assert torch.allclose(keep_gate_bias(models["L5-lstm"]), torch.full((8,), 4.0))
    assert torch.allclose(keep_gate_bias(models["forecast-lstm"]), torch.full((8,), 4.0))
    assert torch.allclose(keep_gate_bias(models["L5-gru"]), torch.full((8,), 2.0))
    models = rs.RNNSequence().model(rs.Config(lengths=[5], hidden=8, forget_bias=0.5,
                                              gate_bias=0.0), None)
    assert torch.allclose(keep_gate_bias(models["L5-lstm"]), torch.full((8,), 1.0))
    assert torch.allclose(keep_gate_bias(models["L5-gru"]), torch.zeros(8))


@pytest.mark.parametrize("key,value,fragment", [
    ("lengths", [], "non-empty"),
    ("lengths", [5, 5], "repeated"),
    ("series_len", 100, "too few test points"),
])
def test_bad_config_is_one_line(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        rs.Config(**{key: value}).validate()


def test_smoke_run(tiny_run):
    m, d = tiny_run.metrics, tiny_run.dir
    for cell in rs.CELLS:
        assert np.isfinite(m[f"{cell}_test_mse"]) and m[f"{cell}_test_mse"] >= 0
        for length in (3, 6):
            assert 0 <= m[f"{cell}_acc_L{length}"] <= 1
    assert m["naive_test_mse"] > 0 and m["seasonal_naive_test_mse"] > 0
    for fig in ("memory", "grad_norm", "curves", "forecast_mse", "forecast"):
        assert (d / "figures" / f"{fig}.png").is_file(), fig
    # gradient clipping is on by default: the pre-clip norm is logged per fit
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert any("L6-rnn/train_grad_norm" in r for r in rows)
    assert any("forecast-lstm/train_grad_norm" in r for r in rows)
    # LIME explains the forecasters only, in regression mode, over the window's time steps
    assert sorted(p.name for p in (d / "explanations").iterdir() if p.is_dir()) == [
        f"forecast-{c}" for c in sorted(rs.CELLS)]
    exp = json.loads((d / "explanations" / "forecast-lstm" / "sample_0.json").read_text())
    assert set(exp["weights"]) == {f"t-{k}" for k in range(1, 25)}
    assert exp["explained_class"] is None
    assert np.isfinite(m["explain_r2"])


def test_saved_run_evaluates_and_explains_without_retraining(cli, tiny_run):
    code, out, err = cli("eval", str(tiny_run.dir))
    assert code == 0, err
    evals = sorted(tiny_run.dir.glob("eval-*.json"))
    got = json.loads(evals[-1].read_text())
    got = got.get("metrics", got)
    for key in ("lstm_test_mse", "naive_test_mse", "gru_acc_L6"):
        assert got[key] == pytest.approx(tiny_run.metrics[key], rel=1e-4, abs=1e-6), key
    code, out, err = cli("explain", str(tiny_run.dir), "--samples", "1")
    assert code == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 3])
def test_gated_cells_remember_where_the_simple_rnn_cannot(tmp_path, seed):
    """At L=50 noise steps (the defaults: 12 epochs, LSTM forget bias 2 + 2) the LSTM and GRU
    recall the first element; the plain RNN guesses. Seeds 0 and 3 are where the LSTM stalled
    at 0.82 and 0.79 under the old defaults (forget bias 1 + 1, 8 epochs), and seed 3's GRU is
    the slowest of seeds 0-9 (0.9 validation accuracy at epoch 10). Not every seed separates
    them: over seeds 0-9 the gated cells reach 1.00 on all, but the plain RNN learns L=50 too on
    seeds 1 and 8 (benchmarks/bench_rnn_sequence.py, results/rnn_sequence.json).
    The forecasters beat the naive forecasts."""
    res = run("rnn-sequence", runs_dir=tmp_path, track=False, progress=False, lengths=[50],
              seed=seed, explain_num_samples=300)
    m = res.metrics
    assert m["lstm_acc_L50"] >= 0.9 and m["gru_acc_L50"] >= 0.9  # measured 1.00 and 1.00
    assert m["rnn_acc_L50"] <= 0.6  # measured 0.52 (seed 0), 0.53 (seed 3)
    for cell in rs.CELLS:  # measured at most 0.021 against naive 0.053 and 0.056
        assert m[f"{cell}_test_mse"] < 0.5 * m["naive_test_mse"]
        assert m[f"{cell}_test_mse"] < 0.5 * m["seasonal_naive_test_mse"]
