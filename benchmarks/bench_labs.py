"""Whole `lab` commands, wall time from a shell's point of view, plus import costs.

Every command is a fresh interpreter (`python -m labs.cli ...`) with its runs in a temporary
`--runs-dir` and W&B's files in a temporary folder; the commands are interleaved and repeated
(`--repeat`, default 3; every other round each `--no-track` run goes first), and the table
gives the median and range; W&B's cost is the median of each round's tracked-minus-untracked
difference. Targets (issue 14):
`lab run digits-mlp` within 0.5 s of `--no-track`; xor-mlp and perceptron-gates about 2 s;
`lab list` under 0.1 s. The second table is the wall time of `python -c "import X"` minus
the `python -c pass` floor: what a lab pays for each heavy dependency it loads.

    python benchmarks/bench_labs.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

COMMANDS = {
    "lab list": ["list"],
    "lab run digits-mlp": ["run", "digits-mlp"],
    "lab run digits-mlp --no-track": ["run", "digits-mlp", "--no-track"],
    "lab run xor-mlp": ["run", "xor-mlp"],
    "lab run xor-mlp --no-track": ["run", "xor-mlp", "--no-track"],
    "lab run perceptron-gates": ["run", "perceptron-gates"],
    "lab run perceptron-gates --no-track": ["run", "perceptron-gates", "--no-track"],
}
IMPORTS = ["torch", "matplotlib.figure", "sklearn", "lime.lime_base", "lime.lime_tabular",
           "lime.lime_image", "skimage.segmentation", "wandb", "explain", "labs"]
# The floor under any lab that trains: torch.optim's step imports torch._dynamo on its first
# call (torch/optim/optimizer.py, `_use_grad_for_differentiable`), whatever the model.
FIRST_STEP = "torch + one Adam step"
FIRST_STEP_CODE = ("import torch; p = torch.zeros(1, requires_grad=True); "
                   "o = torch.optim.Adam([p]); p.sum().backward(); o.step()")


def wall(cmd: list[str], **env: str) -> float:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=_common.env(**env),
                         cwd=_common.ROOT)
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return seconds


def _pairs_swapped(names: list[str]) -> list[str]:
    """`names` with every "X --no-track" moved before its "X" (order effects cancel)."""
    out = list(names)
    for i, n in enumerate(names):
        if n.endswith(" --no-track") and i and names[i - 1] == n[:-len(" --no-track")]:
            out[i - 1], out[i] = n, names[i - 1]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-write", action="store_true", help="print only, keep the JSON as is")
    args = p.parse_args()
    py = sys.executable
    times: dict[str, list[float]] = {k: [] for k in ["python -c pass", *COMMANDS]}
    imports: dict[str, list[float]] = {m: [] for m in [*IMPORTS, FIRST_STEP]}
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            wb = {"WANDB_DIR": d, "WANDB_CACHE_DIR": d, "WANDB_CONFIG_DIR": d}
            times["python -c pass"].append(wall([py, "-c", "pass"]))
            names = _pairs_swapped(list(COMMANDS)) if r % 2 else list(COMMANDS)
            for name in names:  # every other round a --no-track run goes before its twin
                argv = COMMANDS[name]
                extra = ["--runs-dir", d] if argv[0] == "run" else []
                times[name].append(wall([py, "-m", "labs.cli", *argv, *extra], **wb))
                print(f"round {r + 1}/{args.repeat} {name:<38} {times[name][-1]:6.2f} s",
                      file=sys.stderr)
            floor = wall([py, "-c", "pass"])
            for m in IMPORTS:
                imports[m].append(wall([py, "-c", f"import {m}"]) - floor)
            imports[FIRST_STEP].append(wall([py, "-c", FIRST_STEP_CODE]) - floor)
    floor = statistics.median(times["python -c pass"])
    result = {"machine": _common.machine(), "repeat": args.repeat,
              "commands": {k: _common.stats(v) for k, v in times.items()},
              "imports": {m: _common.stats(v) for m, v in imports.items()},
              "floor_s": round(floor, 4)}
    med = {k: v["median"] for k, v in result["commands"].items()}
    # the W&B cost as the median of each round's difference (the two runs side by side): a
    # difference of medians mixes rounds, and one slow round moves it by half a second
    tracked = [a - b for a, b in zip(times["lab run digits-mlp"],
                                     times["lab run digits-mlp --no-track"], strict=True)]
    result["wandb_minus_no_track_s"] = _common.stats(tracked)
    result["checks"] = {
        "digits-mlp W&B offline minus --no-track, same round, median (s)":
            round(statistics.median(tracked), 3),
        "difference of the two medians (s)":
            round(med["lab run digits-mlp"] - med["lab run digits-mlp --no-track"], 3),
        "lab list under 0.1 s": med["lab list"] < 0.1,
        "floor of a training lab (python + torch + first optimizer step), s":
            round(floor + result["imports"][FIRST_STEP]["median"], 3),
    }
    import render

    print(render.labs_table(result))
    print()
    print(render.imports_table(result))
    if not args.no_write:
        print(f"\nwrote {_common.write('labs', result)}")


if __name__ == "__main__":
    main()
