"""A `digits-cnn` epoch through `run.fit` against a hand-written loop doing the same work.

The same on both sides: digits-cnn's default network (conv 32 -> conv 64 -> max-pool ->
dropout -> dense 128 -> dropout -> 10) on the 8x8 digits in [0, 1], the training split of
digits-cnn's default split with no validation pass (80% of the digits), batch 64, Adam with
the one-cycle schedule peaking at 3e-3 stepped every batch, and a random 1-pixel shift of
every training batch (`labs.images.random_shift`). Variants:

    hand    a hand-written loop slicing tensors with randperm (the reference)
    fit     `lab run digits-cnn` as `run.fit` trains it: default callbacks, W&B off

Each measurement is its own interpreter, the variants interleaved within a round (their
order rotated), `--rounds` rounds; ms/epoch is the wall time of the fit (imports, data and
figures excluded) over the epochs; the ratio is to the hand loop of the SAME round.

    python benchmarks/bench_cnn_epoch.py [--rounds 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402

VARIANTS = {
    "hand": "hand-written loop (randperm slices, same shifts and schedule)",
    "fit": "`run.fit` (digits-cnn), default callbacks, W&B off",
}
BATCH, LR = 64, 3e-3


def _data():
    from labs import datasets

    return datasets.digits(test_size=0.2, val_size=0.0, scale="unit", seed=0)


def work_hand(epochs: int) -> tuple[float, float]:
    import torch

    from labs import images
    from supervised.digits_cnn import cnn

    data = _data()
    torch.manual_seed(0)
    model = cnn([32, 64], 128, 10)
    opt = torch.optim.Adam(model.parameters(), LR)
    x, y = data.train.x, data.train.y
    steps = -(-len(x) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, LR, epochs=epochs, steps_per_epoch=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    t = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(BATCH):
            xb = images.random_shift(x[idx], 1, (8, 8))
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), y[idx]).backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t
    model.eval()
    with torch.no_grad():
        acc = (model(data.test.x).argmax(-1) == data.test.y).float().mean().item()
    return seconds, acc


def work_fit(epochs: int) -> tuple[float, float]:
    from labs import Callback, run

    class FitTimer(Callback):  # times the whole fit, as bench_trainer.py does
        def on_fit_start(self, trainer):
            self.t0 = time.perf_counter()

        def on_fit_end(self, trainer):
            self.seconds = time.perf_counter() - self.t0

    timer = FitTimer()
    with tempfile.TemporaryDirectory() as d:
        res = run("digits-cnn", val_size=0.0, epochs=epochs, batch_size=BATCH, lr=LR,
                  explain=False, track=False, runs_dir=d, progress=False, callbacks=[timer])
    return timer.seconds, res.metrics["test_acc"]


def worker_main(variant: str, epochs: int, threads: int) -> None:
    import torch

    from labs import threads as threads_mod

    threads_mod.apply(threads)  # what `lab run` does: both sides get the same thread count
    seconds, acc = globals()[f"work_{variant}"](epochs)
    print(json.dumps({"ms_per_epoch": 1e3 * seconds / epochs, "acc": acc,
                      "threads": torch.get_num_threads()}))


def measure(rounds: int, epochs: int, threads: int) -> dict:
    script = Path(__file__).resolve()
    variants = list(VARIANTS)
    raw = {v: [] for v in variants}
    accs, used = {}, None
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            res = _common.worker(script, ["--worker", v, "--epochs", str(epochs),
                                          "--threads", str(threads)])
            raw[v].append(res["ms_per_epoch"])
            accs[v], used = res["acc"], res["threads"]
            print(f"round {r + 1}/{rounds} {v:<5} {res['ms_per_epoch']:8.1f} ms/epoch",
                  file=sys.stderr)
    rows = {v: {"ms_per_epoch": _common.stats(raw[v]),
                "ratio_to_hand": _common.stats([m / h for m, h in zip(raw[v], raw["hand"])]),
                "test_acc": round(accs[v], 4), "raw_ms": [round(m, 2) for m in raw[v]]}
            for v in variants}
    return {"setting": {"model": "digits-cnn default (conv 32 -> conv 64 -> pool -> dense 128 "
                                 "-> 10, dropout 0.25 / 0.5)",
                        "data": "8x8 digits in [0, 1], 80% train split (1,437), no validation",
                        "optimizer": f"Adam, one-cycle peaking at {LR}, random 1-pixel shifts",
                        "batch": BATCH, "epochs": epochs, "rounds": rounds,
                        "torch_threads": used, "threads_option": threads,
                        "process": "one fresh process per measurement"},
            "labels": dict(VARIANTS), "variants": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads on both sides (0: the framework's auto rule)")
    p.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--no-write", action="store_true", help="print only, keep the JSON as is")
    args = p.parse_args()
    if args.worker:
        return worker_main(args.worker, args.epochs, args.threads)
    result = {"machine": _common.machine(), **measure(args.rounds, args.epochs, args.threads)}
    import render

    print(render.cnn_epoch_table(result))
    if not args.no_write:
        print(f"\nwrote {_common.write('cnn_epoch', result)}")


if __name__ == "__main__":
    main()
