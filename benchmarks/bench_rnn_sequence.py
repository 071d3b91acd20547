"""rnn-sequence's memory lesson over seeds: do the gated cells remember where the plain RNN can't?

Each seed runs `rnn-sequence` with its defaults except `lengths=[L]` (50: the longest default
length), no explanations and no tracking, in its own process (the framework's thread rule:
1 torch thread on <= 2 cores). Reported per seed: the test accuracy of the simple RNN, the
LSTM and the GRU at L (chance is 0.5), whether that seed separates them (both gated cells
>= 0.9 and the plain RNN <= 0.6), the first epoch at which each cell's validation accuracy
reached 0.9 (the JSON keeps every epoch's), and the wall time of the run (memory task at L and
the forecasters). Then one default `lab run rnn-sequence --no-track` (all lengths, LIME on,
seed 0) is timed as a whole command. About 3 minutes on 2 cores.

    python benchmarks/bench_rnn_sequence.py [--seeds 0 1 ... 9] [--length 50]
    python benchmarks/bench_rnn_sequence.py --set epochs=12 --no-write   # try a setting
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402

CELLS = ("rnn", "lstm", "gru")
GATED_MIN, RNN_MAX = 0.9, 0.6  # what "separates" means: recalled vs near chance (0.5)


def separates(accs: dict[str, float]) -> bool:
    return (accs["lstm"] >= GATED_MIN and accs["gru"] >= GATED_MIN
            and accs["rnn"] <= RNN_MAX)


def worker(seed: int, length: int, overrides: dict) -> dict:
    from labs import run

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = run("rnn-sequence", seed=seed, lengths=[length], explain=False, track=False,
                  progress=False, runs_dir=tmp, **overrides)
        wall = time.perf_counter() - t
        rows = [json.loads(line) for line in (res.dir / "metrics.jsonl").read_text().splitlines()]
    m = res.metrics
    val = {c: [round(r[f"L{length}-{c}/val_acc"], 3) for r in rows
               if f"L{length}-{c}/val_acc" in r] for c in CELLS}
    return {"acc": {c: m[f"{c}_acc_L{length}"] for c in CELLS}, "val_acc_per_epoch": val,
            "test_mse": {c: m[f"{c}_test_mse"] for c in CELLS},
            "naive_test_mse": m["naive_test_mse"], "seconds": round(wall, 1)}


def default_command(overrides: dict) -> dict:
    """`lab run rnn-sequence --no-track` as a user types it: seed 0, every default."""
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "labs.cli", "run", "rnn-sequence",
                              "--no-track", "--runs-dir", tmp, *sets],
                             capture_output=True, text=True, env=_common.env(), cwd=_common.ROOT)
        wall = time.perf_counter() - t
        if out.returncode != 0:
            raise RuntimeError(f"lab run rnn-sequence failed:\n{out.stderr[-2000:]}")
        summary = json.loads(next(Path(tmp).rglob("summary.json")).read_text())
    metrics = summary.get("metrics", summary)
    return {"seconds": round(wall, 1),
            "metrics": {k: round(v, 4) for k, v in metrics.items()
                        if isinstance(v, (int, float))}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=JSON",
                   help="config overrides (recorded in the JSON), e.g. epochs=12")
    p.add_argument("--no-default-run", action="store_true",
                   help="skip timing the whole default command")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--no-write", action="store_true", help="print only, keep the JSON as is")
    args = p.parse_args()
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.worker:
        print(json.dumps(worker(args.seed, args.length, overrides)))
        return

    script = Path(__file__).resolve()
    result = {"machine": _common.machine(), "length": args.length, "overrides": overrides,
              "criterion": {"gated_min": GATED_MIN, "rnn_max": RNN_MAX}, "seeds": {}}
    for seed in args.seeds:
        extra = [a for s in args.set for a in ("--set", s)]
        r = _common.worker(script, ["--worker", "--seed", str(seed), "--length",
                                    str(args.length), *extra])
        r["separates"] = separates(r["acc"])
        result["seeds"][str(seed)] = r
        print(f"seed {seed}: " + ", ".join(f"{c} {r['acc'][c]:.2f}" for c in CELLS)
              + f"; separates: {r['separates']}; {r['seconds']:.0f} s", file=sys.stderr,
              flush=True)
    if not args.no_default_run:
        result["default_run"] = default_command(overrides)
        print(f"default run: {result['default_run']['seconds']:.0f} s", file=sys.stderr)
    import render

    print(render.rnn_sequence_table(result))
    if not args.no_write:
        print(f"\nwrote {_common.write('rnn_sequence', result)}")


if __name__ == "__main__":
    main()
