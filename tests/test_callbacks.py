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
