"""The shared trainer: batching, early stopping, clipping, schedules, custom steps."""

from __future__ import annotations

import torch
from torch import nn

from labs import Callback, Split, TensorLoader, Trainer
from labs.callbacks import EarlyStopping


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
