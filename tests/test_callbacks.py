"""Standard callbacks: checkpoint policy, monitor modes, state keys, step axes, divergence."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from labs import Split, TensorLoader, Trainer, checkpoint, run
from labs.callbacks import Checkpoint, EarlyStopping, infer_mode, parse_interval
from labs.context import Run, make_scheduler
from labs.data import Dataset
from labs.errors import ConfigError, TrainingDiverged


class FakeTracker:
    def __init__(self):
        self.rows = []

    def log(self, metrics, step=None, *, axis="step"):
        self.rows.append((axis, step, dict(metrics)))

    def forget_after(self, step, key):
        pass


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return Split(x, (x[:, 0] > 0).long())


def _run(tmp_path, **cfg):
    cfg = SimpleNamespace(**{"epochs": 4, "batch_size": 16, "lr": 0.05, **cfg})
    return Run("t", "r1", tmp_path, cfg, torch.device("cpu"), FakeTracker(), progress=False)


@pytest.fixture
def saves(monkeypatch):
    """Every checkpoint.save call's file name and epoch."""
    calls = []
    real = checkpoint.save

    def spy(state, path):
        calls.append((path.name, state.get("epoch")))
        return real(state, path)

    monkeypatch.setattr(checkpoint, "save", spy)
    return calls


def test_mode_is_inferred_from_the_monitor_name():
    assert [infer_mode(m) for m in ("val_acc", "val_auc", "f1", "episode_return", "reward",
                                    "val_precision", "recall", "val_r2")] == ["max"] * 8
    assert [infer_mode(m) for m in ("val_loss", "train_loss", "mse", "kl")] == ["min"] * 4


def test_checkpoint_on_val_acc_keeps_the_best_epoch_not_the_worst(tmp_path):
    accs = iter([0.5, 0.9, 0.7])
    model = nn.Linear(3, 2)
    ck = Checkpoint(tmp_path, monitor="val_acc", every="1 epoch")
    es = EarlyStopping(patience=1, monitor="val_acc")

    class FakeAcc(Checkpoint.__mro__[1]):  # a Callback that sets val_acc before the others
        def on_epoch_end(self, trainer, epoch, logs):
            logs["val_acc"] = next(accs)
            torch.nn.init.constant_(model.weight, float(epoch))

    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.0), nn.CrossEntropyLoss(),
                epochs=3, callbacks=[FakeAcc(), ck, es])
    t.fit(TensorLoader(_data(), 64))
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == 2 and best["val_acc"] == 0.9
    assert torch.equal(best["model"]["weight"], torch.full((2, 3), 2.0))
    assert es.stopped_epoch == 3  # stopped after the drop, not after the improvement


def test_checkpoint_every_n_epochs_and_n_steps_plus_the_end(tmp_path, saves):
    model = nn.Linear(3, 2)
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), nn.CrossEntropyLoss(),
                epochs=7, callbacks=[Checkpoint(tmp_path, monitor="train_loss", every="3 epochs")])
    t.fit(TensorLoader(_data(), 32))
    checkpoint.wait_pending()  # the end's write goes to the background writer
    assert [e for name, e in saves if name == "last.pt"] == [3, 6, 7]
    assert [name for name, _ in saves].count("best.pt") == 3  # with last.pt, not per epoch
    saves.clear()
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), nn.CrossEntropyLoss(),
                epochs=5, callbacks=[Checkpoint(tmp_path, monitor="train_loss", every="5steps")])
    t.fit(TensorLoader(_data(), 32))  # 2 steps per epoch: checked between epochs
    checkpoint.wait_pending()
    assert [e for name, e in saves if name == "last.pt"] == [3, 5]


def test_xor_mlp_writes_one_last_and_one_best_checkpoint_not_hundreds(saves):
    res = run("xor-mlp", explain=False, track=False)  # 300 epochs, well under 30 s
    names = [name for name, _ in saves]
    assert names.count("last.pt") == 1 and names.count("best.pt") == 1
    assert torch.load(res.dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 300


def test_parse_interval():
    assert parse_interval("30s") == (30.0, "s") and parse_interval("2 min") == (120.0, "s")
    assert parse_interval("5 epochs") == (5.0, "epoch") and parse_interval(2) == (2.0, "epoch")
    assert parse_interval("100 steps") == (100.0, "step")
    for bad in ("often", "5 parsecs", "0s"):
        with pytest.raises(ConfigError):
            parse_interval(bad)


def test_callback_states_are_kept_apart_by_state_key():
    model = nn.Linear(3, 2)
    a = EarlyStopping(patience=5, monitor="train_loss")
    b = EarlyStopping(patience=5, monitor="train_acc")
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), nn.CrossEntropyLoss(),
                epochs=2, callbacks=[a, b])
    t.fit(TensorLoader(_data(), 32))
    state = t.state_dict()["callbacks"]
    assert state["EarlyStopping[train_loss]"]["best"] == a.best < 1.0
    assert state["EarlyStopping[train_acc]"]["best"] == b.best > 0.0
    a2 = EarlyStopping(patience=5, monitor="train_loss")
    b2 = EarlyStopping(patience=5, monitor="train_acc")
    Trainer(model, None, callbacks=[a2, b2]).load_state_dict(t.state_dict())
    assert (a2.best, b2.best) == (a.best, b.best)


def test_fit_logs_on_named_epoch_axes_with_global_step(tmp_path):
    r = _run(tmp_path, epochs=2)
    data = Dataset(train=_data(), test=_data(16, 1), val=_data(16, 2), n_classes=2)
    r.fit(nn.Linear(3, 2), data, loss=nn.CrossEntropyLoss(), name="gen")
    rows = r.tracker.rows
    assert [(axis, step, row["global_step"]) for axis, step, row in rows] == [
        ("gen/epoch", 1, 4), ("gen/epoch", 2, 8)]
    assert {"gen/train_loss", "gen/val_loss", "gen/lr/group0"} <= set(rows[0][2])


def test_run_log_passes_the_axis(tmp_path):
    r = _run(tmp_path)
    r.log({"AND/mistakes": 2}, step=3, axis="AND/epoch")
    assert r.tracker.rows == [("AND/epoch", 3, {"AND/mistakes": 2})]


def test_onecycle_schedule_steps_per_batch(tmp_path):
    r = _run(tmp_path, epochs=3, lr_schedule="onecycle", lr=0.1)
    data = Dataset(train=_data(), test=_data(16, 1), n_classes=2)
    fit = r.fit(nn.Linear(3, 2), data, loss=nn.CrossEntropyLoss())
    assert fit.trainer.scheduler_interval == "step"
    assert fit.trainer.scheduler.last_epoch == 12  # 4 batches x 3 epochs
    lrs = fit.history.series("lr/group0")  # as each epoch starts: warm-up, peak, annealing
    assert lrs[0] == pytest.approx(0.1 / 25) and lrs[1] > 0.09 and lrs[2] < lrs[1] / 2
    with pytest.raises(ConfigError, match="batches per epoch"):
        make_scheduler(torch.optim.SGD(nn.Linear(1, 1).parameters(), 0.1), "onecycle", 3)


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    r = _run(tmp_path, epochs=5)
    data = Dataset(train=_data(), test=_data(16, 1), n_classes=2)
    trainer_seen = []

    def loss(out, y):  # NaN from the third epoch's second batch on
        t = trainer_seen[0]
        bad = t.epoch >= 2 and t.global_step >= 2 * 4 + 1
        return nn.functional.cross_entropy(out, y) * (float("nan") if bad else 1.0)

    class Grab(Checkpoint.__mro__[1]):
        def on_fit_start(self, trainer):
            trainer_seen.append(trainer)

    with pytest.raises(TrainingDiverged, match=r"epoch 3, global step 10 \(batch 1\)"):
        r.fit(nn.Linear(3, 2), data, loss=loss, checkpoint_every="1 epoch", callbacks=[Grab()])
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and all(torch.isfinite(v).all() for v in last["model"].values())


def test_digits_mlp_validates_on_a_held_out_split(runs_dir):
    res = run("digits-mlp", epochs=2, explain=False, track=False)
    rows = [json.loads(x) for x in (res.dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if "train_loss" in r]
    assert [r["epoch"] for r in epochs] == [1, 2] and all("val_loss" in r for r in epochs)
    assert all("global_step" in r for r in epochs)
    assert "val_loss" in torch.load(res.dir / "checkpoints" / "best.pt", weights_only=True)


def _gan_like_step(trainer, batch):
    """A step that returns no `loss` (a GAN's d_loss / g_loss)."""
    x, y = batch
    trainer.optimizer.zero_grad()
    d_loss = nn.functional.cross_entropy(trainer.model(x), y)
    trainer.backward(d_loss)
    trainer.optimizer_step(trainer.optimizer)
    return {"d_loss": d_loss.detach()}


def test_resume_without_a_checkpoint_forgets_rows_of_a_step_without_loss(tmp_path):
    """The rows of epochs a killed run logged are dropped on resume even when its step returns
    no `loss` (they used to be logged twice: [1, 2, 1, 2, 3])."""
    from labs.tracker import Tracker

    tracker = Tracker(tmp_path, wandb_mode="disabled")
    for epoch in (1, 2):  # what the killed run logged before its first checkpoint
        tracker.log({"train_d_loss": 1.0, "epoch_time": 0.1}, step=epoch, axis="epoch")
    cfg = SimpleNamespace(epochs=3, batch_size=16, lr=0.05, checkpoint_every="1h")
    run = Run("t", "r1", tmp_path, cfg, torch.device("cpu"), tracker, resuming=True,
              progress=False)
    run.fit(nn.Linear(3, 2), Dataset(train=_data(), test=_data(seed=1)), step=_gan_like_step,
            monitor="train_d_loss")
    tracker.finish()
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "epoch_time" in r] == [1, 2, 3]


def test_a_monitor_that_is_never_logged_is_said_once(tmp_path):
    run = _run(tmp_path, early_stop=2)
    with pytest.warns(RuntimeWarning, match="monitor 'train_loss' is not logged") as caught:
        run.fit(nn.Linear(3, 2), Dataset(train=_data(), test=_data(seed=1)),
                step=_gan_like_step)
    said = [str(w.message) for w in caught if "is not logged" in str(w.message)]
    assert len(said) == 2  # Checkpoint and EarlyStopping, each once for 4 epochs
    assert all("train_d_loss" in m for m in said)


def test_a_config_schedule_a_lab_overrides_is_not_silently_dropped(tmp_path):
    run = _run(tmp_path, lr_schedule="cosine")
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.warns(RuntimeWarning, match="lr_schedule=cosine is ignored"):
        run.fit(model, Dataset(train=_data(), test=_data(seed=1)), optimizer=opt,
                scheduler=torch.optim.lr_scheduler.StepLR(opt, 1), loss=nn.CrossEntropyLoss())


def test_monitor_none_writes_no_best_and_says_nothing(tmp_path, recwarn):
    run = _run(tmp_path, checkpoint_every="1 epochs")
    run.fit(nn.Linear(3, 2), Dataset(train=_data(), test=_data(seed=1)), step=_gan_like_step,
            monitor="none")
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "checkpoints" / "best.pt").exists()
    assert not [w for w in recwarn if "is not logged" in str(w.message)]
    with pytest.raises(ConfigError, match="early_stop=2 needs a metric"):
        _run(tmp_path, early_stop=2).fit(nn.Linear(3, 2), Dataset(train=_data(), test=_data()),
                                         step=_gan_like_step, monitor="none")


# -- early stopping that restores the best epoch's weights --------------------------------------

# the monitored score per epoch: best at epoch 3, worse after it (early_stop=2 stops at 5)
SCORES = [3.0, 2.0, 1.0, 1.5, 2.5, 3.5, 4.5, 5.5]


def _scored_step(trainer, batch):
    """A real SGD step that also reports a scripted `score` (logged as `train_score`)."""
    from labs.trainer import supervised_step

    out = supervised_step(trainer, batch)
    return {**out, "score": SCORES[trainer.epoch]}


class WeightsPerEpoch(Checkpoint.__mro__[1]):
    """A copy of the model's weights after every epoch, by epoch."""

    state_key = "WeightsPerEpoch"

    def __init__(self):
        self.seen = {}

    def on_epoch_end(self, trainer, epoch, logs):
        self.seen[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _scored_fit(tmp_path, callbacks=(), resuming=False, **cfg):
    torch.manual_seed(0)
    cfg = {"epochs": 8, "early_stop": 2, "checkpoint_every": "1h", **cfg}
    r = Run("t", "r1", tmp_path, SimpleNamespace(**{"batch_size": 16, "lr": 0.05, **cfg}),
            torch.device("cpu"), FakeTracker(), progress=False, resuming=resuming)
    data = Dataset(train=_data(), test=_data(16, 1), n_classes=2)
    return r.fit(nn.Linear(3, 2), data, loss=nn.CrossEntropyLoss(), step=_scored_step,
                 monitor="train_score", callbacks=list(callbacks))


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("early_stop, epochs_run", [(2, 5), (10, 8)],
                         ids=["stopped-early", "ran-to-the-end"])
def test_restore_best_ends_with_the_best_epochs_weights(tmp_path, early_stop, epochs_run):
    """The score is best at epoch 3 and worse after: restore_best gives epoch 3's weights back
    whether the fit stops early (epoch 5) or runs all 8 epochs; without it the last ones stay."""
    seen = WeightsPerEpoch()
    fit = _scored_fit(tmp_path / "on", [seen], early_stop=early_stop, restore_best=True)
    assert fit.trainer.epoch == epochs_run and len(fit.history.epochs) == epochs_run
    final = fit.model.state_dict()
    assert _same(final, seen.seen[3]) and not _same(final, seen.seen[epochs_run])
    # the test metrics are those of the restored weights
    assert fit.test["loss"] == pytest.approx(fit.trainer.evaluate(_data(16, 1))["loss"])
    es = next(cb for cb in fit.trainer.callbacks if isinstance(cb, EarlyStopping))
    assert es.best_epoch == 3 and es.best == 1.0

    seen_off = WeightsPerEpoch()
    fit = _scored_fit(tmp_path / "off", [seen_off], early_stop=early_stop, restore_best=False)
    assert fit.trainer.epoch == epochs_run
    assert _same(fit.model.state_dict(), seen_off.seen[epochs_run])
    assert _same(seen_off.seen[3], seen.seen[3])  # the same training either way


def test_restore_best_survives_a_resume(tmp_path):
    """Killed after epoch 4 (best: 3): last.pt holds epoch 4's weights to continue from and
    the best epoch's weights in EarlyStopping's state, so the resumed run stops at 5 and ends
    with epoch 3's weights, as the uninterrupted run does."""
    from run_helpers import KillAt

    seen = WeightsPerEpoch()
    full = _scored_fit(tmp_path / "full", [seen], restore_best=True)
    with pytest.raises(KeyboardInterrupt):
        _scored_fit(tmp_path / "killed", [KillAt(4)], restore_best=True)
    last = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    state = last["callbacks"]["EarlyStopping[train_score]"]
    assert last["epoch"] == 4 and _same(last["model"], seen.seen[4])
    assert state["best_epoch"] == 3 and _same(state["weights"], seen.seen[3])

    resumed = _scored_fit(tmp_path / "killed", resuming=True, restore_best=True)
    assert resumed.trainer.epoch == 5
    assert _same(resumed.model.state_dict(), full.model.state_dict())
    assert _same(resumed.model.state_dict(), seen.seen[3])
    # last.pt keeps the last epoch's weights (what a resume continues from), not the restored
    checkpoint.wait_pending()
    last = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 5 and _same(last["model"], seen.seen[5])


def test_restore_best_without_the_weights_in_the_checkpoint_says_so(tmp_path):
    """A checkpoint without the best weights (written before restore_best existed): the
    resumed fit cannot restore epoch 3 and says so instead of silently keeping the last."""
    from run_helpers import KillAt

    with pytest.raises(KeyboardInterrupt):
        _scored_fit(tmp_path, [KillAt(4)], restore_best=True)
    path = tmp_path / "checkpoints" / "last.pt"
    last = torch.load(path, weights_only=True)
    del last["callbacks"]["EarlyStopping[train_score]"]["weights"]
    torch.save(last, path)
    with pytest.warns(RuntimeWarning, match=r"best epoch \(3\) are not in the checkpoint"):
        resumed = _scored_fit(tmp_path, resuming=True, restore_best=True)
    assert resumed.trainer.epoch == 5


def test_restore_best_is_a_config_option_recorded_with_the_run():
    from labs.config import TrainConfig, build, fields

    info = {f.name: f for f in fields(TrainConfig)}["restore_best"]
    assert info.default is True and info.type is bool
    assert build(TrainConfig, {"restore_best": "false"}).restore_best is False
    res = run("xor-mlp", epochs=3, early_stop=1, restore_best=False, explain=False,
              track=False)
    assert "restore_best: false" in (res.dir / "config.yaml").read_text()
