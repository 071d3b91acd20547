"""The shared trainer: batching, early stopping, clipping, schedules, custom steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labs import Callback, Split, TensorLoader, Trainer
from labs.callbacks import EarlyStopping
from labs.errors import TrainingDiverged


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = (x[:, 0] > 0).long()
    return Split(x, y)


def test_tensor_loader_covers_every_sample_once_and_reshuffles():
    s = Split(torch.arange(10).float().unsqueeze(1), torch.arange(10))
    loader = TensorLoader(s, 4, seed=1)
    loader.set_epoch(1)
    first = torch.cat([y for _, y in loader])
    assert len(loader) == 3 and sorted(first.tolist()) == list(range(10))
    assert torch.equal(first, torch.cat([y for _, y in loader]))  # same epoch: same order
    loader.set_epoch(2)
    assert not torch.equal(first, torch.cat([y for _, y in loader]))


def test_trainer_learns_and_reports_accuracy():
    torch.manual_seed(0)
    data = _data(256)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    t = Trainer(model, torch.optim.Adam(model.parameters(), 0.05), nn.CrossEntropyLoss(),
                epochs=30)
    hist = t.fit(TensorLoader(data, 32), val=data)
    assert hist.series("train_loss")[-1] < hist.series("train_loss")[0] / 3
    assert t.evaluate(data)["acc"] > 0.95 and hist.last["val_acc"] > 0.95


def test_early_stopping_stops():
    data = _data()
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing improves
    es = EarlyStopping(patience=2, monitor="val_loss")
    t = Trainer(model, opt, nn.CrossEntropyLoss(), epochs=50, callbacks=[es])
    t.fit(TensorLoader(data, 16), val=data)
    assert t.epoch == 3 and es.stopped_epoch == 3


def test_grad_clip_bounds_the_step():
    data = _data()
    model = nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0),
                lambda out, y: 1000 * nn.functional.cross_entropy(out, y), epochs=1,
                grad_clip=0.01)
    t.fit(TensorLoader(data, 64, shuffle=False))
    moved = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert moved <= 0.01 + 1e-6


def test_clipping_logs_the_mean_pre_clip_gradient_norm():
    data = _data()
    model = nn.Linear(3, 2)
    norms = []

    class Spy(Callback):
        def on_batch_start(self, trainer, i, batch):
            x, y = batch
            model.zero_grad()
            (1000 * nn.functional.cross_entropy(model(x), y)).backward()
            norms.append(float(torch.nn.utils.get_total_norm(
                [p.grad for p in model.parameters()])))

    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0),
                lambda out, y: 1000 * nn.functional.cross_entropy(out, y), epochs=2,
                grad_clip=0.01, callbacks=[Spy()])
    t.fit(TensorLoader(data, 16, shuffle=False))
    first, second = (e["train_grad_norm"] for e in t.history.epochs)
    assert first == pytest.approx(sum(norms[:4]) / 4, rel=1e-5)  # lr 0: the same each epoch
    assert second == pytest.approx(first, rel=1e-5) and first > 1  # far above the 0.01 clip
    t2 = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                 epochs=1)
    t2.fit(TensorLoader(data, 16))
    assert "train_grad_norm" not in t2.history.last  # no clipping, nothing measured


def test_lr_schedule_and_callbacks_see_every_epoch():
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            seen.append((epoch, logs["lr/group0"]))

    Trainer(model, opt, nn.CrossEntropyLoss(), epochs=3, scheduler=sched,
            callbacks=[Spy()]).fit(TensorLoader(_data(), 64))
    assert seen == [(1, 1.0), (2, 0.5), (3, 0.25)]


def test_custom_step_with_two_optimizers():
    """A GAN-like lab alternates two optimizers inside the shared loop."""
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    model = nn.ModuleDict({"a": a, "b": b})
    opts = {"a": torch.optim.SGD(a.parameters(), 0.1), "b": torch.optim.SGD(b.parameters(), 0.1)}
    calls = []

    def step(trainer, batch):
        x, y = batch
        losses = {}
        for name, opt in opts.items():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model[name](x), y)
            trainer.backward(loss)
            trainer.optimizer_step(opt)
            losses[name] = loss.detach()
            calls.append(name)
        return {"loss": losses["a"] + losses["b"]}

    t = Trainer(model, opts, metrics=(), epochs=2, step=step)
    hist = t.fit(TensorLoader(_data(), 32))
    assert calls == ["a", "b"] * 4 and len(hist.epochs) == 2
    state = t.state_dict()
    assert set(state["optimizer"]) == {"a", "b"}


# -- the loop contract: steps, batches, outputs, hooks, schedules -----------------------------

def test_eval_step_is_replaceable_and_every_scalar_is_averaged_by_batch_size():
    """A VAE-like step returns several scalars: each becomes train_<k> / val_<k>, weighted."""
    data = Split(torch.arange(10).float().unsqueeze(1), torch.zeros(10, dtype=torch.long))
    model = nn.Linear(1, 2)

    def step(trainer, batch):
        x, _ = batch
        return {"loss": torch.tensor(0.0), "recon": x.mean(), "kl": 2.0, "out": model(x)}

    def eval_step(trainer, batch):
        x, _ = batch
        return {"loss": x.sum() * 0, "recon": x.mean() * 10, "kl": torch.tensor([3.0])}

    t = Trainer(model, None, epochs=1, step=step, eval_step=eval_step, metrics=())
    hist = t.fit(TensorLoader(data, 4, shuffle=False), val=data)  # batches of 4, 4, 2
    assert hist.last["train_recon"] == pytest.approx(4.5)  # (1.5*4 + 5.5*4 + 8.5*2) / 10
    assert hist.last["train_kl"] == 2.0
    assert hist.last["val_recon"] == pytest.approx(45.0) and hist.last["val_kl"] == 3.0
    assert "train_out" not in hist.last and "val_out" not in hist.last
    assert t.evaluate(data) == pytest.approx({"loss": 0.0, "recon": 45.0, "kl": 3.0})


class _VAEish(nn.Module):
    """(x, lengths) in, a tuple out: like an RNN over padded sequences or a VAE."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x, lengths=None):
        out = self.lin(x)
        if lengths is not None:
            assert isinstance(lengths, list)  # plain lists are left as they are
        return out, out.mean(), torch.zeros(())


@pytest.mark.parametrize("shape", ["tuple3", "dict", "list_xy"])
def test_default_steps_take_any_batch_structure_and_tuple_outputs(shape):
    torch.manual_seed(0)
    split = _data(32)
    x, y = split.x, split.y
    lengths = [3] * 8
    if shape == "tuple3":
        batches = [(x[i:i + 8], lengths, y[i:i + 8]) for i in range(0, 32, 8)]
    elif shape == "dict":
        batches = [{"x": x[i:i + 8], "lengths": lengths, "y": y[i:i + 8]}
                   for i in range(0, 32, 8)]
    else:
        batches = [[x[i:i + 8], y[i:i + 8]] for i in range(0, 32, 8)]
    model = _VAEish()
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), nn.CrossEntropyLoss(),
                epochs=2)
    hist = t.fit(batches, val=batches)
    assert t.global_step == 8 and 0.0 <= hist.last["train_acc"] <= 1.0
    assert {"val_loss", "val_acc"} <= set(hist.last)
    # evaluate and predict use the first element of the tuple output
    expect = nn.functional.cross_entropy(model(x)[0], y).item()
    assert t.evaluate(split)["loss"] == pytest.approx(expect, rel=1e-5)
    assert t.predict(x).shape == (32, 2)


def test_to_device_keeps_structure():
    from collections import namedtuple

    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

    from labs.trainer import batch_size, split_batch, to_device

    Pair = namedtuple("Pair", "x y")
    packed = pack_padded_sequence(torch.randn(4, 3, 2), [4, 2, 1], enforce_sorted=False)
    batch = {"x": packed, "extra": (torch.ones(2), [1, 2], "text"), "y": Pair(1, torch.ones(3))}
    moved = to_device(batch, "meta")
    assert isinstance(moved["x"], PackedSequence) and moved["x"].data.device.type == "meta"
    assert moved["extra"][0].device.type == "meta" and moved["extra"][1:] == ([1, 2], "text")
    assert isinstance(moved["y"], Pair) and moved["y"].y.device.type == "meta"
    assert batch_size(packed) == 3 and batch_size((torch.ones(5, 2), torch.ones(5))) == 5
    args, kwargs, target = split_batch({"x": 1, "lengths": 2, "target": 3})
    assert (args, kwargs, target) == ((1,), {"lengths": 2}, 3)


def test_unlabelled_batches_default_to_reconstruction():
    """A bare tensor batch is its own loss target (an autoencoder)."""
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    model = nn.Linear(3, 3)
    t = Trainer(model, torch.optim.Adam(model.parameters(), 0.05), nn.MSELoss(), epochs=40)
    hist = t.fit([x[i:i + 16] for i in range(0, 64, 16)], val=[x])
    assert hist.last["val_loss"] < hist.epochs[0]["val_loss"] / 10 and "train_acc" not in hist.last


def test_batch_hooks_and_train_mode_before_epoch_start():
    """A callback keeps a frozen backbone's BatchNorm in eval mode: its running stats stay."""
    backbone = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model = nn.Sequential(backbone, nn.Linear(4, 2))
    before = backbone[1].running_mean.clone()
    seen = []

    class FreezeBN(Callback):
        def on_epoch_start(self, trainer, epoch):
            backbone[1].eval()

        def on_batch_start(self, trainer, batch_idx, batch):
            seen.append(("start", trainer.epoch + 1, batch_idx, len(batch[0])))

        def on_batch_end(self, trainer, batch_idx, batch, out):
            seen.append(("end", trainer.global_step, float(out["loss"]) >= 0))

    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), nn.CrossEntropyLoss(),
                epochs=2, callbacks=[FreezeBN()])
    t.fit(TensorLoader(_data(), 32, shuffle=False))
    assert torch.equal(backbone[1].running_mean, before)
    assert seen == [("start", 1, 0, 32), ("end", 1, True), ("start", 1, 1, 32), ("end", 2, True),
                    ("start", 2, 0, 32), ("end", 3, True), ("start", 2, 1, 32), ("end", 4, True)]


def test_per_step_scheduler_and_every_param_group_lr_logged():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 1.0},
                           {"params": model[1].parameters(), "lr": 0.1}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    t = Trainer(model, opt, nn.CrossEntropyLoss(), epochs=2, scheduler=sched,
                scheduler_interval="step")
    hist = t.fit(TensorLoader(_data(), 16))  # 4 steps per epoch
    assert hist.series("lr/group0") == pytest.approx([1.0, 0.5 ** 4])  # as each epoch starts
    assert hist.series("lr/group1") == pytest.approx([0.1, 0.1 * 0.5 ** 4])
    assert t.scheduler.last_epoch == 8
    assert "lr" not in hist.last


def test_dict_of_optimizers_logs_lr_per_optimizer_and_scaler_updates_once_per_iteration():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    opts = {"g": torch.optim.SGD(a.parameters(), 0.1), "d": torch.optim.SGD(b.parameters(), 0.2)}

    def step(trainer, batch):
        x, y = batch
        out = {}
        for name, m in (("g", a), ("d", b)):
            opts[name].zero_grad()
            loss = nn.functional.cross_entropy(m(x), y)
            trainer.backward(loss)
            trainer.optimizer_step(opts[name])
            out[f"{name}_loss"] = loss.detach()
        return out

    t = Trainer(nn.ModuleDict({"a": a, "b": b}), opts, metrics=(), epochs=1, step=step)
    calls = {"step": 0, "update": 0}
    real = t.scaler

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def step(self, opt):
            calls["step"] += 1
            return real.step(opt)

        def update(self):
            calls["update"] += 1

    t.scaler = Spy()
    hist = t.fit(TensorLoader(_data(), 16))
    assert calls == {"step": 8, "update": 4}
    assert hist.last["lr/g/group0"] == 0.1 and hist.last["lr/d/group0"] == 0.2
    assert {"train_g_loss", "train_d_loss"} <= set(hist.last)


def test_infinite_lr_diverges_with_epoch_and_step():
    model = nn.Linear(3, 2)
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=float("inf")),
                nn.CrossEntropyLoss(), epochs=3)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, global step 2 \(batch 1\)"):
        t.fit(TensorLoader(_data(), 16))
    assert t.epoch == 0 and t.history.epochs == []


def test_a_key_is_averaged_over_the_batches_that_returned_it():
    # a step that reports `extra` on every other batch only (a GAN's generator every k steps)
    def step(trainer, batch):
        trainer.calls = getattr(trainer, "calls", 0) + 1
        out = {"loss": torch.tensor(float(trainer.calls)), "plain": 2.0}
        if trainer.calls % 2:
            out["extra"] = torch.tensor(10.0 * trainer.calls)
        return out

    t = Trainer(nn.Linear(3, 2), None, epochs=1, step=step, metrics=())
    hist = t.fit(TensorLoader(_data(48), 16, shuffle=False))  # batches 1, 2, 3 of 16
    assert hist.last["train_loss"] == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    assert hist.last["train_extra"] == pytest.approx(20.0)  # (10 + 30) / 2, not / 3
    assert hist.last["train_plain"] == pytest.approx(2.0)


def test_the_device_sum_of_a_key_equals_the_host_sum():
    # off the CPU a key's values are summed on the device (one sync per epoch); the same
    # arithmetic, run here on the CPU, must give what the host path's fsum gives
    from labs.trainer import _weighted_sum

    kept = [(torch.tensor(0.5), 16, 0), (2.0, 16, 1), (torch.tensor([1.5]).reshape(()), 8, 2)]
    got = _weighted_sum(kept, torch.device("cpu"))
    assert got.shape == () and got.item() == pytest.approx(0.5 * 16 + 2.0 * 16 + 1.5 * 8)


def test_a_nan_gradient_norm_alone_is_a_divergence_with_one_line():
    model = nn.Linear(3, 2)

    def step(trainer, batch):
        x, y = batch
        loss = nn.functional.cross_entropy(trainer.model(x), y)
        loss.backward()
        before = [p.detach().clone() for p in trainer.model.parameters()]
        for p in trainer.model.parameters():
            p.grad.fill_(float("nan"))
        trainer.optimizer_step(trainer.optimizer)  # measures the (NaN) norm, then steps
        with torch.no_grad():  # ... but the weights, and so the loss, stay finite
            for p, b in zip(trainer.model.parameters(), before, strict=True):
                p.copy_(b)
        return {"loss": loss.detach()}

    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), grad_clip=1.0, epochs=2,
                step=step, metrics=())
    with pytest.raises(TrainingDiverged, match=r"^training diverged: grad_norm not finite at "
                                               r"epoch 1"):
        t.fit(TensorLoader(_data(), 16))


def test_two_callbacks_with_one_state_key_are_refused():
    model = nn.Linear(3, 2)
    t = Trainer(model, None, epochs=1, callbacks=[EarlyStopping(2), EarlyStopping(3)])
    with pytest.raises(ValueError, match="state_key"):
        t.fit([])


def test_channels_last_reaches_the_weights_and_every_image_batch():
    torch.manual_seed(0)
    x = torch.randn(48, 3, 8, 8)
    data = Split(x, (x.mean((1, 2, 3)) > 0).long())

    def net():
        torch.manual_seed(1)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))

    seen = []
    runs = {}
    for cl in (False, True):
        model = net()
        model[0].register_forward_pre_hook(lambda m, a, cl=cl: seen.append(
            (cl, a[0].is_contiguous(memory_format=torch.channels_last))))
        t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                    epochs=2, channels_last=cl)
        t.fit(TensorLoader(data, 16, shuffle=False), val=data)
        t.predict(x)
        runs[cl] = (t, model)
    weight = runs[True][1][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert all(flag for cl, flag in seen if cl) and len([1 for cl, _ in seen if cl]) >= 6
    assert not all(flag for cl, flag in seen if not cl)  # the default leaves batches alone
    a, b = (runs[c][0].history.last for c in (False, True))
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)  # same numbers
