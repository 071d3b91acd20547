"""Our own CartPole agents against Stable-Baselines3's, 3 seeds each, in one run.

Ours: `cartpole-dqn`, `cartpole-reinforce`, `cartpole-a2c` with their defaults (each trains
until an evaluation's mean return reaches 475 over 20 greedy episodes, or its step budget
ends). SB3: DQN and A2C with rl-baselines3-zoo's CartPole-v1 hyperparameters, called directly
(`model.learn`), on the same step budget and the same evaluation schedule as ours (every
`eval_every` environment steps, 20 deterministic episodes on a separately seeded environment,
stop at 475). Each seed of each agent is its own process, on the framework's thread rule
(`threads=0`: 1 torch thread on <= 2 cores). Reported per seed: solved (y/n), the environment
step and the wall time (training and evaluations) at which it was solved, the best evaluation
mean, and environment steps per second.

    python benchmarks/bench_rl.py [--seeds 0 1 2] [--only ours-dqn sb3-a2c ...]
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

SOLVED = 475.0
EVAL_EPISODES = 20
# (label, kind, lab or SB3 algorithm, step budget, eval_every): the SB3 rows get our budgets
AGENTS = {
    "ours-dqn": ("our DQN (double, zoo hyperparameters)", "ours", "cartpole-dqn", 50_000, 2500),
    "sb3-dqn": ("SB3 DQN (zoo hyperparameters)", "sb3", "dqn", 50_000, 2500),
    "ours-a2c": ("our A2C (8 envs, SB3's defaults)", "ours", "cartpole-a2c", 200_000, 10_000),
    "sb3-a2c": ("SB3 A2C (zoo: 8 envs)", "sb3", "a2c", 200_000, 10_000),
    "ours-reinforce": ("our REINFORCE with baseline", "ours", "cartpole-reinforce", 300_000,
                       10_000),
}
# rl-baselines3-zoo hyperparams/dqn.yml and a2c.yml, CartPole-v1 (A2C: n_envs 8, ent_coef 0,
# the rest SB3's defaults)
ZOO = {
    "dqn": dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                exploration_fraction=0.16, exploration_final_eps=0.04,
                policy_kwargs=dict(net_arch=[256, 256])),
    "a2c": dict(ent_coef=0.0),
}
N_ENVS = {"dqn": 1, "a2c": 8}


def worker_ours(lab: str, seed: int) -> dict:
    from labs import run

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        m = run(lab, seed=seed, track=False, explain=False, progress=False,
                runs_dir=tmp).metrics
        wall = time.perf_counter() - t
    return {"solved": m["solved_step"] > 0, "solved_step": m["solved_step"],
            "seconds": m["train_seconds"], "env_steps": m["env_steps"],
            "best_eval_return": m["best_eval_return"], "eval_return": m["eval_return"],
            "steps_per_second": m["steps_per_second"], "wall_with_startup": wall}


def worker_sb3(algo: str, seed: int, budget: int, eval_every: int) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import A2C, DQN
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.monitor import Monitor

    from labs import threads

    threads.apply(0)
    n_envs = N_ENVS[algo]
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    cls = DQN if algo == "dqn" else A2C
    model = cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **ZOO[algo])
    model.set_logger(configure(None, []))  # no /tmp/SB3-<date> folder, no output
    eval_env = Monitor(gym.make("CartPole-v1"))
    eval_env.reset(seed=seed + 10_000)
    stop = StopTrainingOnRewardThreshold(reward_threshold=SOLVED, verbose=0)
    cb = EvalCallback(eval_env, callback_on_new_best=stop, n_eval_episodes=EVAL_EPISODES,
                      eval_freq=max(1, eval_every // n_envs), deterministic=True, verbose=0)
    t = time.perf_counter()
    model.learn(total_timesteps=budget, callback=cb)
    seconds = time.perf_counter() - t
    best = float(cb.best_mean_reward)
    steps = int(model.num_timesteps)
    return {"solved": best >= SOLVED, "solved_step": steps if best >= SOLVED else -1,
            "seconds": round(seconds, 2), "env_steps": steps, "best_eval_return": best,
            "eval_return": best, "steps_per_second": round(steps / seconds, 1),
            "torch_threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", choices=list(AGENTS))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--no-write", action="store_true", help="print only, keep the JSON as is")
    args = p.parse_args()
    if args.worker:
        _, kind, target, budget, every = AGENTS[args.worker]
        out = (worker_ours(target, args.seed) if kind == "ours"
               else worker_sb3(target, args.seed, budget, every))
        print(json.dumps(out))
        return

    script = Path(__file__).resolve()
    result = {"machine": _common.machine(), "seeds": args.seeds, "eval_episodes": EVAL_EPISODES,
              "results": {}}
    for key in args.only or AGENTS:
        label, kind, target, budget, every = AGENTS[key]
        seeds = {}
        for seed in args.seeds:
            seeds[str(seed)] = r = _common.worker(script, ["--worker", key, "--seed", str(seed)])
            print(f"{key:<15} seed {seed}: solved={r['solved']} at {r['solved_step']} steps, "
                  f"{r['seconds']:.1f} s, best {r['best_eval_return']:.1f}, "
                  f"{r['steps_per_second']:.0f} steps/s", file=sys.stderr, flush=True)
        result["results"][key] = {"label": label, "budget": budget, "eval_every": every,
                                  "seeds": seeds}
    import render

    print(render.rl_table(result))
    if not args.no_write:
        print(f"\nwrote {_common.write('rl', result)}")


if __name__ == "__main__":
    main()
