"""How fast are `lab --help` and `lab list`? (target: `lab list` under 0.1 s wall)

Each command runs in a fresh interpreter, as a user's shell would start it, `--repeat` times;
the table gives the median and the minimum wall time, and whether torch got imported.

    python benchmarks/bench_cli.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

CHECK = ("import sys, runpy; sys.argv = ['lab', {args}]; "
         "from labs.cli import main; main(sys.argv[1:]); "
         "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")


def wall(cmd: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=_common.env(),
                       cwd=_common.ROOT)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--no-write", action="store_true", help="print only, keep the JSON as is")
    args = p.parse_args()
    # this checkout's CLI (an installed `lab` may be another tree's)
    lab = f"{sys.executable} -m labs.cli"
    rows = []
    for label, argv in (("lab --help", ["--help"]), ("lab list", ["list"]),
                        ("lab list --tag mlp", ["list", "--tag", "mlp"])):
        times = wall([*lab.split(), *argv], args.repeat)
        rows.append((label, statistics.median(times), min(times)))
    base = wall([sys.executable, "-c", "pass"], args.repeat)
    rows.append(("python -c pass (floor)", statistics.median(base), min(base)))
    torch_t = wall([sys.executable, "-c", "import torch"], max(3, args.repeat // 3))
    rows.append(("python -c 'import torch' (for scale)", statistics.median(torch_t),
                 min(torch_t)))
    probe = subprocess.run([sys.executable, "-c", CHECK.format(args="'list'")],
                           capture_output=True, text=True, check=True, env=_common.env(),
                           cwd=_common.ROOT).stderr.strip()

    print(f"{'command':<40} {'median s':>9} {'min s':>7}")
    for label, med, mn in rows:
        print(f"{label:<40} {med:>9.3f} {mn:>7.3f}")
    print(f"\nlab list: {probe}; target < 0.1 s wall")
    result = {"machine": _common.machine(), "repeat": args.repeat, "probe": probe,
              "rows": {label: {"median": round(med, 4), "min": round(mn, 4)}
                       for label, med, mn in rows}}
    if not args.no_write:
        print(f"wrote {_common.write('cli', result)}")


if __name__ == "__main__":
    main()
