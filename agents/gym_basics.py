"""The Gymnasium loop made visible: a random agent on CartPole-v1, and the baseline it sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labs import Lab, LabConfig, option

ENV_ID = "CartPole-v1"
OBS_NAMES = ["cart position", "cart velocity", "pole angle", "pole angular velocity"]
ACTION_NAMES = ["push left", "push right"]


@dataclass
class Config(LabConfig):
    episodes: int = option(20, "random-agent episodes: their mean return is the baseline",
                           min=1)
    truncate_at: int = option(10, "time limit of the truncation demo: episodes cut here "
                                  "end with truncated=True, not terminated", min=1)
    trace_steps: int = option(12, "steps of the first episode shown in the step table", min=1)
    gif: bool = option(True, "render the first episode to figures/episode.gif")
    gif_fps: int = option(25, "frames per second of the GIF (CartPole itself runs at 50)",
                          min=1, max=50)


class GymBasics(Lab):
    """A random agent on CartPole-v1: reset, step's five values, terminated vs truncated, GIF."""

    lesson = "rl"
    tags = ("rl", "gymnasium", "basics")
    explains = "none"
    headline = "random_return"
    Config = Config

    def run(self, cfg: Config, run) -> dict:
        import gymnasium as gym

        env = gym.make(ENV_ID)
        env.action_space.seed(cfg.seed)  # the random agent's choices, reproducible
        obs_space, act_space = env.observation_space, env.action_space
        print(f"observation space: {obs_space}\naction space:      {act_space}")
        run.table("spaces", ["space", "repr", "shape", "dtype", "low", "high"], [
            ["observation", str(obs_space), list(obs_space.shape), str(obs_space.dtype),
             obs_space.low.tolist(), obs_space.high.tolist()],
            ["action", str(act_space), [], str(act_space.dtype), 0, int(act_space.n) - 1]])
        run.table("observation", ["index", "meaning", "low", "high"],
                  [[i, n, float(obs_space.low[i]), float(obs_space.high[i])]
                   for i, n in enumerate(OBS_NAMES)])

        reset = env.reset(seed=cfg.seed)  # (observation, info)
        obs, info = reset
        trace, frames, returns, lengths, ends = [], [obs], [], [], []
        step_values = 0
        for episode in run.bar(range(cfg.episodes), desc="episodes"):
            if episode:
                obs, info = env.reset()
            ret, length = 0.0, 0
            while True:
                action = env.action_space.sample()
                out = env.step(action)
                step_values = len(out)
                obs, reward, terminated, truncated, info = out
                ret, length = ret + reward, length + 1
                if episode == 0:
                    frames.append(obs)
                    if length <= cfg.trace_steps:
                        trace.append([length, ACTION_NAMES[action], *np.round(obs, 4).tolist(),
                                      reward, terminated, truncated])
                if terminated or truncated:
                    break
            returns.append(ret)
            lengths.append(length)
            ends.append("truncated" if truncated else "terminated")
            run.log({"return": ret, "length": length, "terminated": float(terminated),
                     "truncated": float(truncated)}, step=episode + 1, axis="episode")
        run.table("first_episode", ["t", "action", *OBS_NAMES, "reward", "terminated",
                                    "truncated"], trace)
        run.table("episodes", ["episode", "return", "length", "ended"],
                  [[i + 1, r, n, e] for i, (r, n, e) in enumerate(zip(returns, lengths, ends))])

        cut = truncation_demo(cfg)
        metrics = {
            "random_return": float(np.mean(returns)), "random_return_std": float(np.std(returns)),
            "random_length": float(np.mean(lengths)),
            "terminated_episodes": float(ends.count("terminated")),
            "truncated_episodes": float(ends.count("truncated")),
            "reset_values": float(len(reset)), "step_values": float(step_values),
            "obs_dim": float(obs_space.shape[0]), "n_actions": float(act_space.n),
            **cut}
        run.figure("returns", returns_figure(returns, lengths))
        if cfg.gif:
            path, renderer = write_gif(frames, run.dir / "figures" / "episode.gif", cfg.gif_fps)
            run.video("episode", path, fps=cfg.gif_fps)
            run.table("gif", ["file", "frames", "renderer"],
                      [[path.name, len(frames), renderer]])
            metrics["gif_frames"] = float(len(frames))
        return metrics


def truncation_demo(cfg: Config) -> dict[str, float]:
    """The same random agent under a short time limit: episodes that outlive it end with
    `truncated=True` (the pole did not fall: its value goes on), the others `terminated`."""
    import gymnasium as gym

    env = gym.make(ENV_ID, max_episode_steps=cfg.truncate_at)
    env.action_space.seed(cfg.seed + 1)
    env.reset(seed=cfg.seed + 1)
    ended = {"terminated": 0, "truncated": 0}
    for episode in range(cfg.episodes):
        if episode:
            env.reset()
        while True:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                ended["truncated" if truncated and not terminated else "terminated"] += 1
                break
    return {f"cut{cfg.truncate_at}_truncated": float(ended["truncated"]),
            f"cut{cfg.truncate_at}_terminated": float(ended["terminated"])}


def returns_figure(returns: list[float], lengths: list[int]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(np.arange(1, len(returns) + 1), returns, color="C0")
    ax.axhline(np.mean(returns), color="k", ls="--",
               label=f"random baseline: {np.mean(returns):.1f}")
    ax.axhline(475, color="C2", ls=":", label="solved (475; the limit is 500)")
    ax.set(xlabel="episode", ylabel="return (= steps the pole stayed up)",
           title="CartPole-v1, random agent", yscale="log")
    ax.legend()
    return fig


# -- the GIF ---------------------------------------------------------------------------------


def write_gif(states: list[np.ndarray], path: Path, fps: int) -> tuple[Path, str]:
    """Write an episode as a GIF; returns (path, what drew it). Gymnasium's own rgb_array
    renderer needs pygame; without it each state is drawn with matplotlib."""
    from PIL import Image

    try:
        frames, renderer = pygame_frames(states), "gymnasium rgb_array (pygame)"
    except ImportError:
        frames, renderer = matplotlib_frames(states), "matplotlib (pygame is not installed)"
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps),
                   loop=0)
    return path, renderer


def pygame_frames(states: list[np.ndarray]) -> list[np.ndarray]:
    """CartPole's own rgb_array frames of the given states (needs pygame)."""
    import gymnasium as gym
    import pygame  # noqa: F401 - CartPole's renderer imports it lazily; fail here, early

    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    frames = []
    for s in states:
        env.unwrapped.state = np.asarray(s, dtype=np.float64)
        frames.append(env.render())
    env.close()
    return frames


def matplotlib_frames(states: list[np.ndarray], steps: list[int] | None = None
                      ) -> list[np.ndarray]:
    """Each state (x, x_dot, theta, theta_dot) drawn as a cart on a track with its pole, as an
    RGB array: CartPole's geometry (track +-2.4, pole 1.0 long, failure at +-12 degrees),
    labelled with its step (`steps`; default 0, 1, ...: every state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(4, 2), dpi=75)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(-2.6, 2.6), ylim=(-0.4, 1.6), aspect="equal")
    ax.axis("off")
    ax.plot([-2.4, 2.4], [0, 0], color="k", lw=1)
    cart = ax.add_patch(Rectangle((0, 0), 0.5, 0.3, color="#333333"))
    (pole,) = ax.plot([], [], color="#ca9865", lw=5, solid_capstyle="round")
    label = ax.text(-2.5, 1.45, "", fontsize=8, va="top")
    frames = []
    steps = range(len(states)) if steps is None else steps
    for t, (x, _, theta, _) in zip(steps, states):
        cart.set_xy((x - 0.25, -0.05))
        top = 0.2
        pole.set_data([x, x + np.sin(theta)], [top, top + np.cos(theta)])
        label.set_text(f"t={t}  angle={np.degrees(theta):+.1f}°")
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return frames
