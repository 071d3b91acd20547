"""The shared trainer against a hand-written loop, one fresh process per measurement.

The same model on every side: the digits MLP 64 -> 64 ReLU -> 10, no dropout, Adam 1e-3,
30 epochs, standardized 80/20 split, seed 0, at batch 64 and batch 256. Variants:

    hand        a hand-written loop slicing tensors with randperm (the reference)
    hand-metrics  the same loop also logging the epoch's mean loss and accuracy, the way the
                PyTorch tutorials do (`.item()` per batch): what the trainer's metrics replace
    trainer     the bare `Trainer` (no callbacks)
    fit         `run.fit` with its default callbacks, W&B off (`track=False`)
    fit-wandb   `run.fit` with its default callbacks, W&B offline (the `lab run` default).
                These fits last 0.1-0.6 s, all of it while the sidecar starts W&B (about 1 s
                of CPU on the other core): the row shows that start-up's interference. Over
                600 epochs (2 s) the W&B run and the untracked one take the same wall time;
                `bench_labs.py` gives the whole-command difference
    lightning   Lightning's Trainer, no logger/checkpoint/progress bar (only when installed:
                `pip install -e ".[bench]"`)

Each measurement is its own interpreter (Lightning in the same process slows what runs after
it), variants interleaved within a round, `--rounds` rounds; ms/epoch is the wall time of the
fit (imports and data loading excluded) over the epochs. The ratio is to the hand loop of the
SAME round and batch size, then the median and range over the rounds; the rendered table
adds the fastest run over the hand loop's fastest (noise only adds time). The CPU figures time
the process's CPU (`time.process_time`: this process, its background checkpoint writer
included, not the W&B sidecar): on a shared machine they do not count the time the process
waited for a core, so they show the framework's own work more steadily than the wall clock.

Between processes the same hand loop swings by 10-25% on a shared machine (placement, heap
layout), more than the framework's overhead. A second table therefore runs the hand loop,
its metrics version, the bare Trainer and `run.fit` (W&B off) alternating in ONE fresh
interpreter (`--same-process-rounds`, after an untimed run of each), and checks that the
fits do not slow the hand loop after them (its fastest run after the fits over its fastest
before any: `hand_after_fits_over_before`, ~1.00 when the table is fair).

    python benchmarks/bench_trainer.py [--rounds 5] [--epochs 30] [--batches 64 256]
                                       [--same-process-rounds 15]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402

VARIANTS = {
    "hand": "hand-written loop (randperm slices)",
    "hand-metrics": "hand loop + epoch loss/accuracy (`.item()` per batch)",
    "trainer": "bare `Trainer`",
    "fit": "`run.fit`, default callbacks, W&B off",
    "fit-wandb": "`run.fit`, default callbacks, W&B offline",
    "lightning": "Lightning `Trainer` (no logger/ckpt/bar)",
}


# -- workers: one variant, one batch size, in this process ----------------------------------

def _model():
    from labs import models

    return models.mlp(64, [64], 10)  # 64 -> 64 ReLU -> 10, no dropout


def _acc(model, data) -> float:
    import torch

    with torch.no_grad():
        model.eval()
        return (model(data.test.x).argmax(-1) == data.test.y).float().mean().item()


def _hand_setup(data) -> tuple:
    """(model, Adam, loss, x, y) of the hand loops, seeded like every other side."""
    import torch

    torch.manual_seed(0)
    model = _model()
    return (model, torch.optim.Adam(model.parameters(), 1e-3), torch.nn.CrossEntropyLoss(),
            data.train.x, data.train.y)


def work_hand(data, batch: int, epochs: int, threads: int) -> tuple[float, float, float]:
    import torch

    model, opt, loss_fn, x, y = _hand_setup(data)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(batch):
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    return time.perf_counter() - t, time.process_time() - c, _acc(model, data)


def work_hand_metrics(data, batch: int, epochs: int, threads: int) -> tuple[float, float, float]:
    import torch

    model, opt, loss_fn, x, y = _hand_setup(data)
    history = []
    t, c = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        total = correct = 0.0
        for idx in torch.randperm(len(x)).split(batch):
            opt.zero_grad()
            out = model(x[idx])
            loss = loss_fn(out, y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y[idx]).sum().item()
        history.append((total / len(x), correct / len(x)))
    return time.perf_counter() - t, time.process_time() - c, _acc(model, data)


def work_trainer(data, batch: int, epochs: int, threads: int) -> tuple[float, float, float]:
    import torch

    from labs import TensorLoader, Trainer

    torch.manual_seed(0)
    model = _model()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3),
                      torch.nn.CrossEntropyLoss(), epochs=epochs)
    t, c = time.perf_counter(), time.process_time()
    trainer.fit(TensorLoader(data.train, batch))
    return time.perf_counter() - t, time.process_time() - c, _acc(model, data)


def _work_fit(batch: int, epochs: int, track: str | bool, threads: int
              ) -> tuple[float, float, float]:
    from labs import Callback, run

    class FitTimer(Callback):  # last in the callback list: times the whole fit
        def on_fit_start(self, trainer):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_fit_end(self, trainer):
            self.seconds = time.perf_counter() - self.t0
            self.cpu = time.process_time() - self.c0

    timer = FitTimer()
    with tempfile.TemporaryDirectory() as d:
        # no validation split: the same work as the hand loop (digits-mlp holds out 10%)
        res = run("digits-mlp", hidden=[64], dropout=0.0, activation="relu", lr=1e-3,
                  val_size=0.0,
                  epochs=epochs, batch_size=batch, lr_schedule="none", explain=False,
                  threads=threads, track=track, runs_dir=d, progress=False,
                  callbacks=[timer])
    return timer.seconds, timer.cpu, res.metrics["test_acc"]


def work_fit(data, batch: int, epochs: int, threads: int) -> tuple[float, float, float]:
    return _work_fit(batch, epochs, False, threads)


def work_fit_wandb(data, batch: int, epochs: int, threads: int) -> tuple[float, float, float]:
    return _work_fit(batch, epochs, "offline", threads)


def work_lightning(data, batch: int, epochs: int, threads: int) -> tuple[float, float, float]:
    import lightning as L
    import torch

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _model()

        def training_step(self, b, _):
            return torch.nn.functional.cross_entropy(self.net(b[0]), b[1])

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), 1e-3)

    class Batches:  # the hand loop's batching: Lightning 2 takes any re-iterable
        def __iter__(self):
            x, y = data.train.x, data.train.y
            return ((x[i], y[i]) for i in torch.randperm(len(x)).split(batch))

        def __len__(self):
            return -(-len(data.train.x) // batch)

    torch.manual_seed(0)
    m = Module()
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1)
    t, c = time.perf_counter(), time.process_time()
    trainer.fit(m, Batches())
    return time.perf_counter() - t, time.process_time() - c, _acc(m.net, data)


def worker_main(variant: str, batch: int, epochs: int, threads: int) -> None:
    import torch

    from labs import datasets
    from labs import threads as threads_mod

    threads_mod.apply(threads)  # what `lab run` does: every side gets the same thread count
    data = datasets.digits(seed=0)
    seconds, cpu, acc = globals()[f"work_{variant.replace('-', '_')}"](data, batch, epochs,
                                                                       threads)
    print(json.dumps({"ms_per_epoch": 1e3 * seconds / epochs, "cpu_ms_per_epoch":
                      1e3 * cpu / epochs, "acc": acc,
                      "threads": torch.get_num_threads(),
                      "steps_per_epoch": -(-len(data.train.x) // batch)}))


SAME_PROCESS = ["hand", "hand-metrics", "trainer", "fit"]  # no W&B sidecar, no Lightning


def worker_same_process(batches: list[int], epochs: int, rounds: int, threads: int) -> None:
    """Every variant in this one interpreter, alternating: no process-to-process noise.

    Each variant runs once untimed first (allocator and caches warm), then the hand loop runs
    3 times before any framework fit, the check that the fits do not slow what runs after
    them in this process (the reason for one process per measurement above)."""
    import torch

    from labs import datasets
    from labs import threads as threads_mod

    threads_mod.apply(threads)
    data = datasets.digits(seed=0)
    out: dict = {"threads": torch.get_num_threads(), "batches": {}}
    def timed(v: str, b: int) -> float:
        work = globals()[f"work_{v.replace('-', '_')}"]
        return 1e3 * work(data, b, epochs, threads)[0] / epochs

    for b in batches:
        before = [timed("hand", b) for _ in range(3)]
        for v in SAME_PROCESS:
            timed(v, b)
        raw: dict[str, list[float]] = {v: [] for v in SAME_PROCESS}
        for r in range(rounds):
            k = r % len(SAME_PROCESS)
            for v in SAME_PROCESS[k:] + SAME_PROCESS[:k]:
                raw[v].append(timed(v, b))
        out["batches"][str(b)] = {"raw_ms": raw, "hand_before_fits_ms": before}
    print(json.dumps(out))


def same_process(rounds: int, epochs: int, batches: list[int], threads: int) -> dict:
    """The hand loop, the bare Trainer and run.fit alternating in one fresh interpreter."""
    res = _common.worker(Path(__file__).resolve(),
                         ["--worker", "same-process", "--batches", *map(str, batches),
                          "--epochs", str(epochs), "--rounds", str(rounds),
                          "--threads", str(threads)])
    out = {"rounds": rounds, "torch_threads": res["threads"], "batches": {}}
    for b, r in res["batches"].items():
        raw, hand = r["raw_ms"], r["raw_ms"]["hand"]
        out["batches"][b] = {
            "hand_after_fits_over_before": round(min(hand) / min(r["hand_before_fits_ms"]), 3),
            "variants": {v: {"ms_per_epoch": _common.stats(ms),
                             "ratio_to_hand": _common.stats(
                                 [m / h for m, h in zip(ms, hand, strict=True)]),
                             "fastest_over_fastest_hand": round(min(ms) / min(hand), 3),
                             "raw_ms": [round(m, 3) for m in ms]}
                         for v, ms in raw.items()}}
    return out


# -- the driver ------------------------------------------------------------------------------

def lightning_available() -> bool:
    return importlib.util.find_spec("lightning") is not None


def measure(rounds: int, epochs: int, batches: list[int], variants: list[str],
            threads: int) -> dict:
    script = Path(__file__).resolve()
    raw = {b: {v: [] for v in variants} for b in batches}
    cpu = {b: {v: [] for v in variants} for b in batches}
    accs = {b: {} for b in batches}
    steps = {}
    used = None
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]  # rotate positions
        for b in batches:
            for v in order:
                with tempfile.TemporaryDirectory() as wd:
                    res = _common.worker(script, ["--worker", v, "--batch", str(b),
                                                  "--epochs", str(epochs),
                                                  "--threads", str(threads)],
                                         WANDB_DIR=wd, WANDB_CACHE_DIR=wd, WANDB_CONFIG_DIR=wd)
                raw[b][v].append(res["ms_per_epoch"])
                cpu[b][v].append(res["cpu_ms_per_epoch"])
                accs[b][v] = res["acc"]
                used, steps[b] = res["threads"], res["steps_per_epoch"]
                print(f"round {r + 1}/{rounds} batch {b:>3} {v:<10} "
                      f"{res['ms_per_epoch']:7.2f} ms/epoch", file=sys.stderr)
    out = {"setting": {"model": "digits MLP 64 -> 64 ReLU -> 10, no dropout", "optimizer":
                       "Adam 1e-3", "epochs": epochs, "rounds": rounds, "seed": 0,
                       "torch_threads": used, "threads_option": threads,
                       "process": "one fresh process per measurement"},
           "labels": {v: VARIANTS[v] for v in variants}, "batches": {}}
    for b in batches:
        hand, hand_cpu = raw[b]["hand"], cpu[b]["hand"]
        rows = {}
        for v in variants:
            ratios = [m / h for m, h in zip(raw[b][v], hand, strict=True)]
            cpu_ratios = [m / h for m, h in zip(cpu[b][v], hand_cpu, strict=True)]
            rows[v] = {"ms_per_epoch": _common.stats(raw[b][v]),
                       "ratio_to_hand": _common.stats(ratios),
                       "cpu_ms_per_epoch": _common.stats(cpu[b][v]),
                       "cpu_ratio_to_hand": _common.stats(cpu_ratios),
                       "steps_per_epoch": steps[b], "test_acc": round(accs[b][v], 4),
                       "raw_ms": [round(m, 3) for m in raw[b][v]]}
        out["batches"][str(b)] = rows
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads on every side (0: the framework's auto rule)")
    p.add_argument("--same-process-rounds", type=int, default=15,
                   help="rounds of the same-process table (0: skip it)")
    p.add_argument("--worker", choices=[*VARIANTS, "same-process"], help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    p.add_argument("--no-write", action="store_true", help="print only, keep the JSON as is")
    args = p.parse_args()
    if args.worker == "same-process":
        return worker_same_process(args.batches, args.epochs, args.rounds, args.threads)
    if args.worker:
        return worker_main(args.worker, args.batch, args.epochs, args.threads)

    variants = [v for v in VARIANTS if v != "lightning"]
    note = None
    if lightning_available():
        variants.append("lightning")
    else:
        note = ("Lightning is not installed: its row is skipped "
                "(`pip install -e \".[bench]\"` adds it)")
        print(note, file=sys.stderr)
    result = {"machine": _common.machine(),
              **measure(args.rounds, args.epochs, args.batches, variants, args.threads)}
    if args.same_process_rounds:
        result["same_process"] = same_process(args.same_process_rounds, args.epochs,
                                              args.batches, args.threads)
    if note:
        result["note"] = note
    import render

    print(render.trainer_table(result))
    if not args.no_write:
        print(f"\nwrote {_common.write('trainer', result)}")


if __name__ == "__main__":
    main()
