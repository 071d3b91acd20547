"""1 vs 2 (or more) torch intra-op threads on small models, alone and next to a busy process.

Workloads (hand-written loops, so only the arithmetic differs): the digits MLP 64 -> 64 ReLU
-> 10 at batch 64 and 256 (30 epochs), and a small CNN on the 8x8 digits (Conv 32@3x3 ->
Conv 64@3x3 -> max-pool -> Dense 128 -> 10, batch 64, 1 epoch). Each measurement is its own
process; "contended" runs one busy Python loop (one core) alongside, as another job on a
shared machine would. Reported: wall ms/epoch and CPU ms/epoch (user + system), median and
range over `--rounds`, thread counts interleaved. This is the evidence for `threads=0`
(auto) in labs/threads.py.

    python benchmarks/bench_threads.py [--rounds 3] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402

WORKLOADS = {"mlp-64": ("mlp", 64, 30), "mlp-256": ("mlp", 256, 30), "cnn-64": ("cnn", 64, 1)}
LABELS = {"mlp-64": "digits MLP, batch 64", "mlp-256": "digits MLP, batch 256",
          "cnn-64": "small CNN (8x8 digits), batch 64"}


def worker_main(workload: str, threads: int) -> None:
    import torch
    from torch import nn

    from labs import datasets

    torch.set_num_threads(threads)
    kind, batch, epochs = WORKLOADS[workload]
    data = datasets.digits(seed=0)
    x, y = data.train.x, data.train.y
    torch.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    else:
        x = x.reshape(-1, 1, 8, 8)
        model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                              nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(),
                              nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(batch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(json.dumps({"wall_ms": 1e3 * wall / epochs, "cpu_ms": 1e3 * cpu / epochs,
                      "threads": torch.get_num_threads()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--worker", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--no-write", action="store_true", help="print only, keep the JSON as is")
    args = p.parse_args()
    if args.worker:
        return worker_main(args.worker, args.n)

    script = Path(__file__).resolve()
    raw = {c: {w: {n: {"wall": [], "cpu": []} for n in args.threads} for w in WORKLOADS}
           for c in ("alone", "contended")}
    for r in range(args.rounds):
        for cond in ("alone", "contended"):
            busy = None
            if cond == "contended":
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(0.5)
            try:
                for w in WORKLOADS:
                    order = args.threads if r % 2 == 0 else args.threads[::-1]
                    for n in order:
                        res = _common.worker(script, ["--worker", w, "--n", str(n)])
                        raw[cond][w][n]["wall"].append(res["wall_ms"])
                        raw[cond][w][n]["cpu"].append(res["cpu_ms"])
                        print(f"round {r + 1}/{args.rounds} {cond:<9} {w:<8} {n} thread(s) "
                              f"{res['wall_ms']:8.1f} ms/epoch", file=sys.stderr)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    result = {"machine": _common.machine(), "rounds": args.rounds, "labels": LABELS,
              "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else os.cpu_count(), "results": {}}
    for cond, per_w in raw.items():
        result["results"][cond] = {
            w: {str(n): {"wall_ms_per_epoch": _common.stats(v["wall"]),
                         "cpu_ms_per_epoch": _common.stats(v["cpu"])} for n, v in per_n.items()}
            for w, per_n in per_w.items()}
    import render

    print(render.threads_table(result))
    if not args.no_write:
        print(f"\nwrote {_common.write('threads', result)}")


if __name__ == "__main__":
    main()
