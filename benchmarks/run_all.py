"""Run every benchmark, write benchmarks/results/*.json, then regenerate the README tables.

    python benchmarks/run_all.py            # everything (about 10 minutes on 2 cores)
    python benchmarks/run_all.py --quick    # fewer rounds, for a smoke test
    python benchmarks/run_all.py --only trainer labs

Lightning's row needs `pip install -e ".[bench]"`; without it the trainer table says so.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {  # name: (script, full args, quick args)
    "trainer": ("bench_trainer.py", [], ["--rounds", "2"]),
    "labs": ("bench_labs.py", [], ["--repeat", "1"]),
    "figures": ("bench_figures.py", [], ["--repeat", "2"]),
    "threads": ("bench_threads.py", [], ["--rounds", "1"]),
    "cli": ("bench_cli.py", [], ["--repeat", "3"]),
    "explain": ("bench_explain.py", [], ["--repeats", "5"]),
    "cnn_epoch": ("bench_cnn_epoch.py", [], ["--rounds", "1", "--epochs", "2"]),
    "rl": ("bench_rl.py", [], ["--seeds", "0"]),
    "sb3_bridge": ("bench_sb3_bridge.py", [], ["--rounds", "1"]),
    "rnn_sequence": ("bench_rnn_sequence.py", [], ["--seeds", "0", "--no-default-run"]),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="+", choices=list(SCRIPTS))
    args = p.parse_args()
    for name in args.only or SCRIPTS:
        script, full, quick = SCRIPTS[name]
        t = time.perf_counter()
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick else full)],
                       check=True)
        print(f"== {script}: {time.perf_counter() - t:.0f} s\n", flush=True)
    subprocess.run([sys.executable, str(HERE / "render.py")], check=True)


if __name__ == "__main__":
    main()
