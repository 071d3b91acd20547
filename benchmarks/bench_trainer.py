"""The shared trainer against a hand-written loop on the digits MLP (FACTS.md's setting:
64 -> 64 ReLU -> 10, Adam 1e-3, batch 64, 30 epochs, standardized 80/20 split, seed 0).

Rows: a hand-written loop slicing tensors with randperm; the same loop through a per-sample
DataLoader; the bare `Trainer` (no callbacks); the full `lab run digits-mlp` path's `run.fit`
(tracker file, checkpoint every epoch, no W&B, no explanations). Lightning is added when it is
installed. All in one process, interleaved, `--repeat` times; compare ratios, not absolutes.

    python benchmarks/bench_trainer.py [--repeat 3] [--epochs 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from labs import TensorLoader, Trainer, datasets, models, run


def hand_loop(data, epochs, loader=False):
    torch.manual_seed(0)
    model = models.mlp(64, [64], 10)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x, y = data.train.x, data.train.y
    if loader:
        dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64,
                                         shuffle=True)
    for _ in range(epochs):
        model.train()
        batches = dl if loader else (
            (x[idx], y[idx]) for idx in torch.randperm(len(x)).split(64))
        for xb, yb in batches:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    with torch.no_grad():
        return (model(data.test.x).argmax(-1) == data.test.y).float().mean().item()


def bare_trainer(data, epochs):
    torch.manual_seed(0)
    model = models.mlp(64, [64], 10)
    t = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss(),
                epochs=epochs)
    t.fit(TensorLoader(data.train, 64))
    return t.evaluate(data.test)["acc"]


def trainer_with_callbacks(data, epochs):
    """The trainer with what `run.fit` adds per epoch: metrics file and atomic checkpoints."""
    from labs.callbacks import Checkpoint, TrackMetrics
    from labs.tracker import Tracker

    torch.manual_seed(0)
    model = models.mlp(64, [64], 10)
    with tempfile.TemporaryDirectory() as d:
        tracker = Tracker(d, wandb_mode="disabled")
        t = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss(),
                    epochs=epochs, callbacks=[TrackMetrics(tracker), Checkpoint(d, "train_loss")])
        t.fit(TensorLoader(data.train, 64))
        tracker.finish()
    return t.evaluate(data.test)["acc"]


def full_fit(data, epochs):
    with tempfile.TemporaryDirectory() as d:
        res = run("digits-mlp", epochs=epochs, explain=False, track=False, runs_dir=d,
                  progress=False)
    return res.metrics["test_acc"]


def lightning(data, epochs):
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = models.mlp(64, [64], 10)

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), 1e-3)

    torch.manual_seed(0)
    m = Module()
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.train.x, data.train.y),
                                     batch_size=64, shuffle=True)
    L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False,
              accelerator="cpu").fit(m, dl)
    with torch.no_grad():
        return (m.net(data.test.x).argmax(-1) == data.test.y).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()
    data = datasets.digits(seed=0)
    variants = {
        "hand loop (randperm slices)": lambda: hand_loop(data, args.epochs),
        "hand loop (DataLoader)": lambda: hand_loop(data, args.epochs, loader=True),
        "labs Trainer (bare)": lambda: bare_trainer(data, args.epochs),
        "labs Trainer + metrics file + ckpts": lambda: trainer_with_callbacks(data, args.epochs),
        "whole `lab run` (data, 3 figures)": lambda: full_fit(data, args.epochs),
    }
    try:
        import lightning  # noqa: F401

        variants["Lightning Trainer (no logger/ckpt)"] = lambda: lightning(data, args.epochs)
    except ImportError:
        pass
    for fn in variants.values():  # warm-up: imports, first-call costs
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    accs: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, fn in variants.items():
            t = time.perf_counter()
            accs[name] = fn()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["hand loop (randperm slices)"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} epochs, "
          f"median of {args.repeat}")
    print(f"{'variant':<38} {'ms/epoch':>9} {'ratio':>6} {'test acc':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<38} {1000 * med / args.epochs:>9.2f} {med / base:>6.2f} "
              f"{accs[name]:>9.3f}")


if __name__ == "__main__":
    main()
