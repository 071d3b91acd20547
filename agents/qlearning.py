"""Tabular Q-learning (or SARSA) on Gymnasium's FrozenLake and Taxi: a table of action values
learned one step at a time, epsilon-greedy with decay, and its greedy policy replayed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from labs import CheckpointError, Lab, LabConfig, checkpoint, option

EVAL_SEED_OFFSET = 10_000  # evaluation episodes use their own seed, never the training one


@dataclass
class Config(LabConfig):
    algo: Literal["q", "sarsa"] = option("q", "q: off-policy Q-learning (max over the next "
                                              "actions); sarsa: on-policy (the next action "
                                              "taken)")
    episodes: int = option(5000, "training episodes", min=1)
    alpha: float = option(0.1, "learning rate of each table update", gt=0, max=1)
    gamma: float = option(0.99, "discount factor", min=0, max=1)
    epsilon_start: float = option(1.0, "exploration rate of the first episode", min=0, max=1)
    epsilon_end: float = option(0.01, "exploration rate it decays towards", min=0, max=1)
    epsilon_decay: float = option(1e-3, "per-episode rate k of epsilon = end + (start - end) "
                                        "* exp(-k * episode)", min=0)
    eval_episodes: int = option(1000, "greedy evaluation episodes after training", min=1)
    log_every: int = option(50, "episodes per logged point (means over the block)", min=1)
    checkpoint_every: int = option(500, "episodes between writes of checkpoints/last.pt (the "
                                        "Q-table and the counters `--resume` continues from; "
                                        "also at the end and on interrupt)", min=1)


@dataclass
class TaxiConfig(Config):
    episodes: int = option(3000, "training episodes")
    alpha: float = option(0.5, "learning rate of each table update")
    epsilon_decay: float = option(5e-3, "per-episode rate k of epsilon = end + (start - end) "
                                        "* exp(-k * episode)")
    log_every: int = option(20, "episodes per logged point (means over the block)")


def make_env(env_id: str, **kwargs: Any):
    import gymnasium as gym

    return gym.make(env_id, **kwargs)


def taxi_id() -> str:
    """Taxi-v4 from gymnasium 1.3 on (v3 is refused there); Taxi-v3 before."""
    import gymnasium as gym

    return "Taxi-v4" if "Taxi-v4" in gym.registry else "Taxi-v3"


def epsilon(cfg: Config, episode: int) -> float:
    return cfg.epsilon_end + (cfg.epsilon_start - cfg.epsilon_end) * math.exp(
        -cfg.epsilon_decay * episode)


def choose(q: np.ndarray, s: int, eps: float, rng: np.random.Generator) -> int:
    """Epsilon-greedy, ties among the best actions broken at random (an all-zero row is not
    always 'left')."""
    if rng.random() < eps:
        return int(rng.integers(q.shape[1]))
    best = np.flatnonzero(q[s] == q[s].max())
    return int(best[0] if len(best) == 1 else best[rng.integers(len(best))])


def train(env, q: np.ndarray, cfg: Config, rng: np.random.Generator, on_episode,
          start: int = 0, steps: int = 0) -> int:
    """Learn `q` in place over episodes `start` .. `cfg.episodes - 1` (`steps` taken before);
    `on_episode(i, return, length, eps, env_steps)` after each. Returns the environment steps
    taken in all."""
    for i in range(start, cfg.episodes):
        eps = epsilon(cfg, i)
        # one seed starts the stream; a resumed run starts a new one where it left off
        s, _ = env.reset(seed=cfg.seed + i if i == start else None)
        a = choose(q, s, eps, rng)
        ret, length = 0.0, 0
        while True:
            s2, r, terminated, truncated, _ = env.step(a)
            a2 = choose(q, s2, eps, rng)
            # a terminal state has no future; a truncated episode (time limit) still has one
            future = 0.0 if terminated else (q[s2].max() if cfg.algo == "q" else q[s2, a2])
            q[s, a] += cfg.alpha * (r + cfg.gamma * future - q[s, a])
            ret, length = ret + r, length + 1
            if terminated or truncated:
                break
            s, a = s2, a2
        steps += length
        on_episode(i, ret, length, eps, steps)
    return steps


def resume(path: Path, q: np.ndarray, rng: np.random.Generator, returns: np.ndarray,
           lengths: np.ndarray) -> tuple[int, int]:
    """Fill `q`, `rng` and the per-episode records from last.pt; returns (episodes completed,
    environment steps taken)."""
    state = checkpoint.load(path, require=("q", "episode", "env_steps", "rng"))
    saved = np.asarray(state["q"])
    if saved.shape != q.shape:
        raise CheckpointError(f"checkpoint {path} holds a {saved.shape} Q-table; this "
                              f"environment needs {q.shape}")
    q[:] = saved
    rng.bit_generator.state = state["rng"]
    n = int(state["episode"])
    returns[:n], lengths[:n] = np.asarray(state["returns"]), np.asarray(state["lengths"])
    return n, int(state["env_steps"])


def evaluate_greedy(env, q: np.ndarray, episodes: int, seed: int) -> np.ndarray:
    """Returns of the greedy policy (argmax, first of ties) over `episodes` seeded episodes."""
    returns = np.zeros(episodes)
    for i in range(episodes):
        s, _ = env.reset(seed=seed if i == 0 else None)
        while True:
            s, r, terminated, truncated, _ = env.step(int(np.argmax(q[s])))
            returns[i] += r
            if terminated or truncated:
                break
    return returns


def exact_return(env, policy: np.ndarray) -> float:
    """The greedy policy's expected return from the start states within the time limit,
    computed from the environment's own transition table (`P`), not sampled."""
    u = env.unwrapped
    n = len(policy)
    trans, reward = np.zeros((n, n)), np.zeros(n)
    for s in range(n):
        for p, s2, r, done in u.P[s][int(policy[s])]:
            reward[s] += p * r
            if not done:
                trans[s, s2] += p
    v = np.zeros(n)
    for _ in range(env.spec.max_episode_steps):
        v = reward + trans @ v
    return float(u.initial_state_distrib @ v)


class TabularLab(Lab):
    """Shared by the FrozenLake and Taxi labs: train, log, plot, save and replay a Q-table."""

    lesson = "rl"
    explains = "none"
    headline = "eval_return"
    Config = Config

    def env_id(self) -> str:
        raise NotImplementedError

    def env_kwargs(self) -> dict[str, Any]:
        return {}

    def data(self, cfg: Config) -> None:
        return None  # an agent's data is its environment, made fresh where it is needed

    def model(self, cfg: Config, data: Any = None) -> np.ndarray:
        """An all-zero Q-table: one row per state, one column per action."""
        env = make_env(self.env_id(), **self.env_kwargs())
        return np.zeros((env.observation_space.n, env.action_space.n))

    def run(self, cfg: Config, run) -> dict:
        env = make_env(self.env_id(), **self.env_kwargs())
        q = self.model(cfg)
        rng = np.random.default_rng(cfg.seed)
        returns = np.zeros(cfg.episodes)
        lengths = np.zeros(cfg.episodes, dtype=int)
        last = run.checkpoints / "last.pt"
        start = steps = 0
        if run.resuming and last.is_file():
            start, steps = resume(last, q, rng, returns, lengths)
            run.tracker.forget_after(start, "episode")  # rows logged after last.pt come again
            run.tracker.forget_after(steps, "env_step")
        bar = iter(run.bar(range(start, cfg.episodes), desc="episodes",
                           total=cfg.episodes - start))
        done = [start, steps]  # episodes and steps completed: what last.pt records

        def save_last() -> None:
            run.tracker.flush()  # the rows of every episode last.pt holds are on disk first
            checkpoint.save({"q": q, "episode": done[0], "env_steps": done[1],
                             "rng": rng.bit_generator.state, "returns": returns[:done[0]],
                             "lengths": lengths[:done[0]]}, last)

        def on_episode(i: int, ret: float, length: int, eps: float, steps: int) -> None:
            returns[i], lengths[i] = ret, length
            done[:] = [i + 1, steps]
            next(bar, None)
            if (i + 1) % cfg.log_every == 0 or i + 1 == cfg.episodes:
                block = slice(i - i % cfg.log_every, i + 1)
                mean = float(returns[block].mean())
                run.log({"return": mean, "length": float(lengths[block].mean()),
                         "epsilon": eps, "env_step": steps}, step=i + 1, axis="episode")
                run.log({"episode_return": mean}, step=steps, axis="env_step")
            if (i + 1) % cfg.checkpoint_every == 0 or i + 1 == cfg.episodes:
                save_last()

        try:
            steps = train(env, q, cfg, rng, on_episode, start, steps)
        except KeyboardInterrupt:
            save_last()  # the episodes completed so far; `--resume` goes on from there
            raise
        self.q = q
        run.save_model(q)
        metrics = self.evaluate(cfg, {"": q}, None)
        metrics.update(train_return_last_100=float(returns[-100:].mean()), env_steps=steps,
                       states=q.shape[0], actions=q.shape[1])
        run.figure("returns", returns_figure(returns, self.name or self.env_id()))
        run.figure("policy", self.policy_figure(q, env))
        return metrics

    def evaluate(self, cfg: Config, models: dict[str, Any], data: Any) -> dict[str, float]:
        """The greedy policy of the saved Q-table over `eval_episodes` seeded episodes (the
        same episodes after training and in `lab eval`), and its exact expected return."""
        q = models[""]
        env = make_env(self.env_id(), **self.env_kwargs())
        returns = evaluate_greedy(env, q, cfg.eval_episodes, cfg.seed + EVAL_SEED_OFFSET)
        return {"eval_return": float(returns.mean()), "eval_return_std": float(returns.std()),
                "exact_return": exact_return(env, q.argmax(axis=1))}

    def save(self, path: Path, models: dict[str, Any]) -> None:
        checkpoint.save({"q": models[""], "env_id": self.env_id()},
                        Path(path) / "checkpoints" / "qtable.pt")

    def load(self, path: Path, cfg: Config, data: Any) -> dict[str, Any]:
        file = Path(path) / "checkpoints" / "qtable.pt"
        state = checkpoint.load(file, require=("q",))
        q = np.asarray(state["q"])
        want = self.model(cfg).shape
        if q.shape != want:
            raise CheckpointError(f"checkpoint {file} holds a {q.shape} Q-table; "
                                  f"{self.env_id()} needs {want}")
        return {"": q}

    def policy_figure(self, q: np.ndarray, env):
        raise NotImplementedError


class FrozenLakeQ(TabularLab):
    """Tabular Q-learning (or SARSA) on the slippery 4x4 FrozenLake: Q-table and greedy arrows."""

    tags = ("rl", "tabular", "q-learning")
    headline = "eval_return"
    Config = Config

    def env_id(self) -> str:
        return "FrozenLake-v1"

    def env_kwargs(self) -> dict[str, Any]:
        return {"map_name": "4x4", "is_slippery": True}

    def policy_figure(self, q: np.ndarray, env):
        return lake_figure(q, env.unwrapped.desc)


class TaxiQ(TabularLab):
    """Tabular Q-learning (or SARSA) on Taxi: pick a passenger up, drop them at the hotel."""

    tags = ("rl", "tabular", "q-learning")
    headline = "eval_return"
    Config = TaxiConfig

    def env_id(self) -> str:
        return taxi_id()

    def policy_figure(self, q: np.ndarray, env):
        return taxi_figure(q, env)


# -- figures ---------------------------------------------------------------------------------


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Moving average over `window` episodes (shorter at the start)."""
    c = np.cumsum(np.insert(x.astype(float), 0, 0.0))
    i = np.arange(1, len(x) + 1)
    lo = np.maximum(0, i - window)
    return (c[i] - c[lo]) / (i - lo)


def returns_figure(returns: np.ndarray, title: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    window = max(1, min(100, len(returns) // 10))
    ax.plot(np.arange(1, len(returns) + 1), returns, ".", ms=1, alpha=0.25, color="grey",
            label="episode")
    ax.plot(np.arange(1, len(returns) + 1), smooth(returns, window), color="C0",
            label=f"mean of the last {window}")
    ax.set(xlabel="episode", ylabel="return", title=f"{title}: return per training episode")
    ax.legend(loc="lower right")
    return fig


ARROWS = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}  # left, down, right, up as (dx, dy)


def lake_figure(q: np.ndarray, desc: np.ndarray):
    """The map with the greedy action as an arrow on each tile, and the Q-table as a heatmap."""
    from matplotlib.figure import Figure

    rows, cols = desc.shape
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax, axq = fig.subplots(1, 2, width_ratios=[1, 1.3])
    colours = {b"S": "#cde7ff", b"F": "#eef6ff", b"H": "#30475e", b"G": "#9be39b"}
    for r in range(rows):
        for c in range(cols):
            tile = desc[r, c]
            ax.add_patch(_rect(c, r, colours[tile]))
            s = r * cols + c
            if tile in (b"H", b"G"):
                ax.text(c, r, tile.decode(), ha="center", va="center", fontsize=14,
                        color="white" if tile == b"H" else "black")
                continue
            dx, dy = ARROWS[int(np.argmax(q[s]))]
            ax.annotate("", (c + 0.3 * dx, r + 0.3 * dy), (c - 0.3 * dx, r - 0.3 * dy),
                        arrowprops=dict(arrowstyle="->", lw=2))
            ax.text(c, r + 0.4, f"{q[s].max():.2f}", ha="center", va="bottom", fontsize=7)
    ax.set(xlim=(-0.5, cols - 0.5), ylim=(rows - 0.5, -0.5), aspect="equal", xticks=[],
           yticks=[], title="greedy action per tile (value below)")
    im = axq.imshow(q, aspect="auto", cmap="viridis")
    axq.set(xticks=range(4), xticklabels=["left", "down", "right", "up"],
            yticks=range(len(q)), xlabel="action", ylabel="state (row * 4 + col)",
            title="Q-table")
    fig.colorbar(im, ax=axq)
    return fig


def _rect(c: int, r: int, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=colour, edgecolor="grey")


TAXI_ACTIONS = ["south", "north", "east", "west", "pickup", "dropoff"]


def taxi_figure(q: np.ndarray, env):
    """Greedy actions on the 5x5 grid for one passenger/destination pair (passenger waiting at
    R, going to G; then on board, going to G), and how often each action is greedy."""
    from matplotlib.figure import Figure

    u = env.unwrapped
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    symbols = {0: "↓", 1: "↑", 2: "→", 3: "←", 4: "P", 5: "D"}
    for ax, (passenger, title) in zip(axes[:2], [(0, "passenger at R, going to G"),
                                                  (4, "passenger on board, going to G")]):
        grid = np.zeros((5, 5))
        for row in range(5):
            for col in range(5):
                s = u.encode(row, col, passenger, 1)
                a = int(np.argmax(q[s]))
                grid[row, col] = q[s].max()
                ax.text(col, row, symbols[a], ha="center", va="center", fontsize=14)
        ax.imshow(grid, cmap="viridis", alpha=0.6)
        for r, line in enumerate(u.desc[1:-1]):  # the map's walls: '|' between two columns
            for c in range(4):
                if line[2 * c + 2] == b"|":
                    ax.plot([c + 0.5, c + 0.5], [r - 0.5, r + 0.5], color="k", lw=3)
        for name, (r, c) in zip("RGYB", u.locs):
            ax.text(c - 0.4, r - 0.25, name, fontsize=9, color="red", weight="bold")
        ax.set(xticks=[], yticks=[], title=title)
    counts = np.bincount(q.argmax(axis=1), minlength=6)
    axes[2].bar(TAXI_ACTIONS, counts)
    axes[2].set(title="greedy action over all 500 states", ylabel="states")
    axes[2].tick_params(axis="x", rotation=30)
    return fig
