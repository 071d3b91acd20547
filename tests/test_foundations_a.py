"""Foundations labs, part A: gd-optimizers, logistic-regression, activations, weight-init and
loss-functions; and the core pieces they share (variants that diverge, labs.probes)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from labs import datasets, variants
from labs.context import Run


class _Tracker:
    def __init__(self):
        self.tables = {}

    def log(self, metrics, step=None, *, axis="step"):
        pass

    def log_table(self, name, columns, rows):
        self.tables[name] = (list(columns), [list(r) for r in rows])

    def log_figure(self, name, path):
        pass


def _run(tmp_path, epochs=6, lr=0.05):
    cfg = SimpleNamespace(epochs=epochs, batch_size=16, lr=lr, seed=0)
    (tmp_path / "figures").mkdir(parents=True, exist_ok=True)
    return Run("t", "r1", tmp_path, cfg, torch.device("cpu"), _Tracker(), progress=False)


def _line():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)).astype("f4")
    return datasets.from_arrays(x, x @ np.array([2.0, -1.0]), classification=False, seed=0)


def _reg():
    return nn.Sequential(nn.Linear(2, 1), nn.Flatten(0))


# -- labs.variants: a diverging variant is reported, not raised --------------------------------

def test_fit_all_reports_a_diverging_variant_and_trains_the_rest(tmp_path):
    from labs.errors import TrainingDiverged

    def huge_lr():  # SGD at lr 5 on unit-variance inputs: |1 - 5 * 2| > 1, the loss explodes
        model = _reg()
        return variants.Variant(model, fit={"optimizer": torch.optim.SGD(model.parameters(), 5.0)})

    common = {"loss": nn.MSELoss(), "metrics": ()}
    with pytest.raises(TrainingDiverged):  # the default still raises
        variants.fit_all(_run(tmp_path / "raise"), {"huge_lr": huge_lr}, _line(), **common)
    run = _run(tmp_path)
    specs = {"ok": _reg(), "huge_lr": huge_lr, "after": _reg()}
    results = variants.fit_all(run, specs, _line(), diverged="report", **common)
    assert list(results) == ["ok", "huge_lr", "after"]
    bad = results["huge_lr"]
    assert bad.fit is None and "diverged" in bad.diverged and bad.test == {}
    assert results["ok"].diverged == "" and results["after"].test["loss"] < 0.5
    rows = variants.log_table(run, "t", results)
    cols, _ = run.tracker.tables["t"]
    status = cols.index("status")
    assert [r[status] for r in rows] == ["ok", "diverged", "ok"]
    run.figure("c", variants.curves(results, "train_loss"))  # draws with a diverged variant
    assert (tmp_path / "figures" / "c.png").is_file()
    with pytest.raises(ValueError, match="diverged="):
        variants.fit_all(run, {}, _line(), diverged="ignore")


# -- gd-optimizers ---------------------------------------------------------------------------

def _table(result, name):
    import json

    t = json.loads((result.dir / f"{name}.table.json").read_text())
    return {r[0]: dict(zip(t["columns"], r, strict=True)) for r in t["rows"]}


def test_gd_optimizers_recovers_the_true_weights_and_reports_the_divergence(tmp_path):
    from labs import run

    res = run("gd-optimizers", track=False, runs_dir=tmp_path, progress=False, epochs=10,
              n_samples=300,
              optimizers=["sgd", "adam"], stochastic_epochs=1, surface_steps=20)
    m = res.metrics
    assert m["weight_error"] < 0.15  # (3, -2, 1) recovered by mini-batch SGD
    assert m["opt/adam/weight_error"] < 0.15
    # the too-large learning rate and the raw (unscaled) inputs diverge: reported, not raised
    assert m["lr/lr=1.5/diverged"] == 1.0 and m["scale/raw/diverged"] == 1.0
    assert m["diverged_variants"] == 2.0
    assert _table(res, "lr")["lr=1.5"]["status"] == "diverged"
    assert _table(res, "lr")["lr=0.05"]["status"] == "ok"
    # per epoch, one full-batch step per epoch lags far behind mini-batches
    assert m["batch/full_batch/test_loss"] > 3 * m["batch/mini_batch/test_loss"]
    assert set(_table(res, "nonconvex")) == {"sgd", "adam"}
    for fig in ("opt_loss", "opt_loss_time", "batch_loss_time", "surface", "nonconvex",
                "scale_loss", "shuffle_loss", "lr_loss"):
        assert (res.dir / "figures" / f"{fig}.png").is_file(), fig
    # `lab eval` scores every kept variant on the data it was trained on, the rescaled ones
    # too: its numbers are the run's own test losses (its own evaluate: the variants recorded
    # as trained on data of their own are not left out)
    import yaml

    from labs.reload import evaluate_saved

    own = yaml.safe_load((res.dir / "config.yaml").read_text())["recorded"]["trained_on_own_data"]
    assert set(own) == {"scale/raw", "scale/standardized", "scale/minmax01", "scale/minmax11",
                        "shuffle/shuffled", "shuffle/not_shuffled"}

    _, evaluated = evaluate_saved(str(res.dir))
    kept = {k: v for k, v in m.items() if k.endswith("/test_loss")}
    assert {"scale/minmax01/test_loss", "scale/minmax11/test_loss"} <= set(kept)
    assert evaluated == pytest.approx(kept, rel=1e-5)


@pytest.mark.slow
def test_gd_optimizers_default_every_optimizer_but_adadelta_recovers_the_weights(tmp_path):
    from labs import run

    res = run("gd-optimizers", track=False, runs_dir=tmp_path, progress=False)
    m = res.metrics
    for opt in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "nadam"):
        assert m[f"opt/{opt}/weight_error"] < 0.15, opt
    assert m["opt/adadelta/weight_error"] > 0.5  # Adadelta's slow start: still far after 20
    assert m["scale/standardized/test_loss"] < m["scale/minmax11/test_loss"] \
        < m["scale/minmax01/test_loss"]  # same learning rate: the better conditioned, the faster
    # the momentum methods cross the saddle into the global minimum, plain SGD stops in the local
    bumpy = _table(res, "nonconvex")
    assert bumpy["momentum"]["minimum"] == "global" and bumpy["sgd"]["minimum"] == "local"


# -- logistic-regression ---------------------------------------------------------------------

@pytest.mark.parametrize("C", [1.0, 0.05])
def test_logistic_regression_matches_sklearn_with_the_same_penalty(tmp_path, C):
    from labs import run

    res = run("logistic-regression", track=False, runs_dir=tmp_path, progress=False, C=C,
              epochs=300, explain=False)
    m = res.metrics
    assert m["coef_max_diff"] < 0.02 * max(1.0, m["coef_max_abs"])
    assert m["intercept_diff"] < 0.02
    assert abs(m["test_acc"] - m["sklearn_acc"]) <= 0.01 and m["test_acc"] > 0.95
    for fig in ("curves", "coefficients", "sigmoid"):
        assert (res.dir / "figures" / f"{fig}.png").is_file()
    assert len(_table(res, "coefficients")) == 30


def test_logistic_lesson_is_known():
    from labs.lab import LESSONS
    from supervised.logistic_regression import LogisticRegression

    assert LESSONS[LogisticRegression.lesson] == "Logistic regression"


@pytest.mark.slow
def test_logistic_regression_lime_ranks_the_30_features_like_the_coefficients(tmp_path):
    from labs import run

    res = run("logistic-regression", track=False, runs_dir=tmp_path, progress=False)
    m = res.metrics
    assert m["coef_max_diff"] < 0.005
    # Spearman of |LIME weight| vs |coefficient| over all 30 features, mean of 10 samples
    assert m["explain_rank_corr"] > 0.8
    assert m["explain_deletion_ratio"] > 3


# -- labs.probes -----------------------------------------------------------------------------

def test_probes_record_gradient_norms_paths_activations_and_gradients(tmp_path):
    from labs import probes

    run = _run(tmp_path, epochs=3)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0))
    norms, trace = probes.GradientNorms(model), probes.ParamTrace(model[2].weight)
    data = _line()
    run.fit(model, data, loss=nn.MSELoss(), metrics=(), callbacks=[norms, trace],
            optimizer=torch.optim.SGD(model.parameters(), 0.01))
    assert list(norms.history) == ["0", "2"] and all(len(v) == 3 for v in norms.history.values())
    steps = 3 * -(-len(data.train.y) // 16)
    assert trace.points.shape == (steps + 1, 4)  # the start, then one row per step
    # the last row is the trained weight; the gradients measured now match autograd's
    assert np.allclose(trace.points[-1], model[2].weight.detach().numpy().ravel())
    x, y = data.test.x, data.test.y
    grads = probes.gradients(model, nn.MSELoss(), x, y)
    model.zero_grad()
    nn.MSELoss()(model(x), y).backward()
    assert torch.allclose(grads["0"], model[0].weight.grad)
    acts = probes.activations(model, x)
    assert list(acts) == ["1"] and torch.allclose(acts["1"], torch.tanh(model[0](x)))
    run.figure("h", probes.histograms(acts, title="t"))
    assert (tmp_path / "figures" / "h.png").is_file()


# -- activations -----------------------------------------------------------------------------

def test_the_bias_lesson_and_the_linear_collapse():
    from supervised import activations as act

    assert act.relu_neuron((1, 2), (-2, 1)) == 0.0  # -2 + 2 = 0: ReLU gives 0
    assert act.relu_neuron((1, 2), (-2, 1), 3.0) == 3.0  # a bias of 3 lifts it to 3
    torch.manual_seed(0)
    deep = act.deep_mlp(5, 4, 7, 3, "linear").double()
    x = torch.randn(50, 5, dtype=torch.float64)
    single = act.collapse(deep)
    assert single.weight.shape == (3, 5)  # four hidden layers, one matrix
    assert torch.allclose(deep(x), single(x), atol=1e-12)
    with pytest.raises(ValueError, match="collapses"):
        act.collapse(act.deep_mlp(5, 2, 7, 3, "relu"))


def test_activations_sigmoid_gradients_vanish_towards_the_input(tmp_path):
    from labs import run

    res = run("activations", track=False, runs_dir=tmp_path, progress=False, epochs=2,
              activations=["sigmoid", "relu", "linear"])
    m = res.metrics
    # at the start, sigmoid's first layer gets a tiny part of its last layer's gradient
    assert m["sigmoid/grad_first_over_last"] < 1e-3
    assert m["grad_ratio_relu_over_sigmoid"] > 100
    assert m["linear/collapse_max_diff"] < 1e-9  # the trained linear net is one linear layer
    assert m["bias/relu_without_bias"] == 0.0 and m["bias/relu_with_bias_3"] == 3.0
    for fig in ("functions", "gradient_norms", "val_loss", "val_acc"):
        assert (res.dir / "figures" / f"{fig}.png").is_file()


@pytest.mark.slow
def test_activations_default_the_non_saturating_ones_learn_sigmoid_does_not(tmp_path):
    from labs import run

    m = run("activations", track=False, runs_dir=tmp_path, progress=False).metrics
    for a in ("tanh", "relu", "elu"):
        assert m[f"{a}/test_acc"] > 0.9, a
    assert m["sigmoid/test_acc"] < 0.3  # six sigmoid layers: the gradient never arrives
    assert 0.7 < m["linear/test_acc"] < m["relu/test_acc"]  # a linear model, however deep


# -- weight-init -----------------------------------------------------------------------------

def test_weight_init_symmetry_saturation_and_explosion(tmp_path):
    from labs import run

    res = run("weight-init", track=False, runs_dir=tmp_path, progress=False, epochs=2, depth=4,
              schemes=["zeros", "constant", "large_tanh", "large_relu", "xavier_tanh"])
    m = res.metrics
    # symmetry: every hidden unit is still a copy of the others after training ...
    assert m["zeros/unit_spread"] == 0.0 and m["constant/unit_spread"] == 0.0
    assert m["constant/hidden_weight_change"] > 1e-3  # ... although the constant's weights moved
    assert m["zeros/hidden_weight_change"] == 0.0  # zeros: no gradient reaches them at all
    assert m["xavier_tanh/unit_spread"] > 0.1
    assert m["large_tanh/saturated"] > 0.5 > m["xavier_tanh/saturated"]  # tanh stuck at +-1
    assert m["large_relu/act_std_last"] > 100 * m["large_relu/act_std_first"]  # explodes
    assert 0.3 < m["xavier_tanh/act_std_last"] / m["xavier_tanh/act_std_first"] < 3
    for fig in ("spread", "val_loss", "activations", "gradients"):
        assert (res.dir / "figures" / f"{fig}.png").is_file()


@pytest.mark.slow
def test_weight_init_default_xavier_and_he_learn_the_symmetric_ones_do_not(tmp_path):
    from labs import run

    m = run("weight-init", track=False, runs_dir=tmp_path, progress=False).metrics
    assert m["he_relu/test_acc"] > 0.9 and m["xavier_tanh/test_acc"] > 0.9
    for s in ("zeros", "constant", "small"):
        assert m[f"{s}/test_acc"] < 0.3, s
    assert m.get("large_relu/diverged") == 1.0 or m["large_relu/test_acc"] < 0.5


# -- loss-functions --------------------------------------------------------------------------

def test_one_loss_written_several_ways_gives_one_value():
    from supervised.loss_functions import equivalences

    for name, (a, b) in equivalences(3).items():
        assert a == pytest.approx(b, abs=1e-5), name


def test_loss_functions_mae_resists_outliers_and_the_network_learns_with_each(tmp_path):
    from labs import run

    res = run("loss-functions", track=False, runs_dir=tmp_path, progress=False, epochs=3,
              losses=["cross_entropy", "kl_divergence", "hinge"])
    m = res.metrics
    # outliers on the right tilt the squared-error line; absolute error and Huber hold it
    assert m["mse_slope_error"] > 0.2
    assert m["mae_slope_error"] < 0.1 and m["huber_slope_error"] < 0.1
    assert m["equivalence_max_diff"] < 1e-5
    # KL to a one-hot target is cross-entropy (minus a zero entropy): the same training
    assert m["kl_divergence/test_acc"] == pytest.approx(m["cross_entropy/test_acc"], abs=0.01)
    assert m["hinge/test_acc"] > 0.8
    for fig in ("outliers", "regression_losses", "classification_losses", "val_acc"):
        assert (res.dir / "figures" / f"{fig}.png").is_file()


@pytest.mark.slow
def test_loss_functions_default_every_loss_trains_the_network(tmp_path):
    from labs import run

    m = run("loss-functions", track=False, runs_dir=tmp_path, progress=False).metrics
    for loss in ("cross_entropy", "kl_divergence", "hinge", "mse_softmax"):
        assert m[f"{loss}/test_acc"] > 0.9, loss
    assert m["mae_slope_error"] < 0.05 < 0.2 < m["mse_slope_error"]
