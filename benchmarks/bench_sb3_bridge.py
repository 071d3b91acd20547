"""The SB3 bridge's overhead: `lab run cartpole-ppo` against a bare `model.learn`, one fresh
process per measurement.

The same agent on every side: PPO on CartPole-v1 with the zoo's hyperparameters
(agents/hyperparams/ppo.yml: 8 envs, n_steps 32, batch 256, 20 epochs, lin_1e-3), seed 0,
`--steps` env steps, the framework's thread rule. Variants:

    bare          `PPO(...).learn(steps)`: SB3 alone (its default logger, no callbacks)
    bridge        `lab run cartpole-ppo`, W&B off, no periodic evaluation: the tracker logger,
                  per-episode logging, latest checkpoints, the progress callback
    bridge-wandb  the same with W&B offline (the `lab run` default)
    bridge-eval   the bridge with its default periodic evaluation (5 episodes every 10k steps):
                  extra work, not overhead, shown for what a default run costs

Seconds are those of `PPO.learn`, timed by one wrapper on every side (imports, env creation,
the final checkpoint and evaluation excluded): wall time and the process's CPU time (steadier
on a shared machine: waiting for a core does not count). Ratios are to `bare` of the SAME
round, then the median and range over `--rounds` interleaved rounds.

    python benchmarks/bench_sb3_bridge.py [--rounds 3] [--steps 20000]
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
    "bare": "bare `model.learn` (SB3 alone)",
    "bridge": "bridge, W&B off, no periodic evaluation",
    "bridge-wandb": "bridge, W&B offline, no periodic evaluation",
    "bridge-eval": "bridge, W&B off, evaluation every 10k steps (5 episodes)",
}
TARGET = 1.10  # the bound for `bridge` / `bare`


def work_bare(steps: int) -> tuple[float, int]:
    from stable_baselines3.common.env_util import make_vec_env

    from agents import sb3_bridge as bridge
    from agents.sb3_labs import CartPoleConfig
    from labs import config

    spec = bridge.resolve("ppo", config.build(CartPoleConfig, {"n_timesteps": steps}))
    env = make_vec_env(spec.env_id, n_envs=spec.n_envs, seed=0)
    model = spec.algo_class(spec.policy, env, seed=0, device="cpu", verbose=0, **spec.kwargs)
    model.learn(steps)
    return int(model.num_timesteps)


def _work_bridge(steps: int, track: str | bool, eval_every: int) -> int:
    from labs import run

    with tempfile.TemporaryDirectory() as d:
        m = run("cartpole-ppo", n_timesteps=steps, eval_every=eval_every, explain=False,
                final_eval_episodes=1, track=track, runs_dir=d, progress=False).metrics
    return int(m["env_steps"])


def timed_learn() -> dict[str, float]:
    """Time every `PPO.learn` in this process the same way on every side: wall seconds and
    the process's CPU seconds (all its threads; on a shared machine the CPU time is the
    steadier of the two, since waiting for a core does not count)."""
    from stable_baselines3 import PPO

    learn, out = PPO.learn, {"seconds": 0.0, "cpu_seconds": 0.0}

    def timed(self, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return learn(self, *args, **kwargs)
        finally:
            out["seconds"] += time.perf_counter() - wall
            out["cpu_seconds"] += time.process_time() - cpu

    PPO.learn = timed
    return out


def worker_main(variant: str, steps: int) -> None:
    import torch

    from labs import threads as threads_mod

    threads_mod.apply(0)  # what `lab run` does: the same thread count on every side
    times = timed_learn()
    if variant == "bare":
        done = work_bare(steps)
    else:
        done = _work_bridge(steps, "offline" if variant == "bridge-wandb" else False,
                            10_000 if variant == "bridge-eval" else 0)
    print(json.dumps({**times, "steps": done, "threads": torch.get_num_threads()}))


def measure(rounds: int, steps: int, variants: list[str]) -> dict:
    script = Path(__file__).resolve()
    raw: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    cpu_ratios: dict[str, list[float]] = {v: [] for v in variants}
    used = None
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]  # rotate positions
        got = {}
        for v in order:
            with tempfile.TemporaryDirectory() as wd:
                res = _common.worker(script, ["--worker", v, "--steps", str(steps)],
                                     WANDB_DIR=wd, WANDB_CACHE_DIR=wd, WANDB_CONFIG_DIR=wd)
            got[v] = res
            raw[v].append(res["seconds"])
            cpu[v].append(res["cpu_seconds"])
            used = res["threads"]
            print(f"round {r + 1}/{rounds} {v:<13} {res['seconds']:7.2f} s wall "
                  f"{res['cpu_seconds']:7.2f} s CPU ({res['steps']} steps)", file=sys.stderr)
        for v in variants:
            ratios[v].append(got[v]["seconds"] / got["bare"]["seconds"])
            cpu_ratios[v].append(got[v]["cpu_seconds"] / got["bare"]["cpu_seconds"])
    return {"setting": {"agent": "SB3 PPO, CartPole-v1, zoo hyperparameters (8 envs)",
                        "steps": steps, "rounds": rounds, "seed": 0, "torch_threads": used,
                        "process": "one fresh process per measurement",
                        "timed": "model.learn only", "target_bridge_over_bare": TARGET},
            "variants": {v: {"label": VARIANTS[v], "seconds": _common.stats(raw[v]),
                             "steps_per_second": round(steps / _common.stats(raw[v])["median"]),
                             "ratio_to_bare": _common.stats(ratios[v]),
                             "cpu_seconds": _common.stats(cpu[v]),
                             "cpu_ratio_to_bare": _common.stats(cpu_ratios[v])}
                         for v in variants},
            "machine": _common.machine()}


def report(data: dict) -> str:
    s = data["setting"]
    def cell(st: dict, fmt: str = ".2f") -> str:
        return f"{st['median']:{fmt}} ({st['min']:{fmt}}-{st['max']:{fmt}})"

    rows = [[d["label"], cell(d["seconds"], ".1f"), d["steps_per_second"],
             cell(d["ratio_to_bare"]), cell(d["cpu_seconds"], ".1f"),
             cell(d["cpu_ratio_to_bare"])] for d in data["variants"].values()]
    return (f"{s['agent']}, {s['steps']} env steps, {s['torch_threads']} torch thread(s), "
            f"{s['rounds']} rounds, one fresh process per measurement; median (range):\n\n"
            + _common.table(["variant", "learn s (wall)", "steps/s", "wall / bare (same round)",
                           "learn s (CPU)", "CPU / bare (same round)"], rows)
            + f"\n\ntarget: bridge / bare <= {TARGET}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    a = p.parse_args()
    if a.worker:
        worker_main(a.worker, a.steps)
        return
    variants = ["bare", *[v for v in a.variants if v != "bare"]]
    data = measure(a.rounds, a.steps, variants)
    path = _common.write("sb3_bridge", data)
    print(report(data))
    print(f"\n-> {path}")


if __name__ == "__main__":
    main()
