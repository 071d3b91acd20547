"""One episode of an agent as a GIF, for our own PyTorch agents and the SB3 labs alike.

Its own module, not `agents.common`, so that the SB3 bridge can use it without importing
PyTorch at import time: it needs only numpy, and gymnasium, imageio and matplotlib when called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RENDERED = "gymnasium rgb_array"
DRAWN = "matplotlib (pygame is not installed)"


def episode_gif(env_id: str, act: Callable[[Any], Any], path: Path, seed: int, fps: int = 25,
                max_frames: int = 500, every: int = 2) -> tuple[Path, int, str]:
    """Play one episode from `reset(seed=seed)`, `act(observation) -> action` choosing each
    action (the caller's greedy or deterministic policy), and write it to `path` as a GIF
    (imageio, `fps` frames a second).

    Every `every`-th state becomes a frame, and the last one (where the episode ended): half
    the frames by default, which keeps the GIF small and CartPole (50 steps a second) in real
    time at 25 fps. Play stops once `max_frames` frames are taken (a long episode is cut).
    The frames are gymnasium's rgb_array renders; the classic-control envs need pygame for
    those, and without it each state is drawn with matplotlib instead: CartPole as its cart
    and pole, any other env as bars of its observation, so no env is refused for lack of
    pygame. Returns (path, frames written, what drew them)."""
    import gymnasium as gym
    import imageio.v2 as imageio

    env = None
    try:
        env = gym.make(env_id, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames, renderer = [env.render()], RENDERED
    except (gym.error.DependencyNotInstalled, ImportError):  # pygame, when rendering
        if env is not None:
            env.close()
        env, frames, renderer = gym.make(env_id), None, DRAWN
        obs, _ = env.reset(seed=seed)
    states, steps = [np.asarray(obs)], [0]
    try:
        t, done = 0, False
        while not done and len(states) < max_frames:
            obs, _, terminated, truncated, _ = env.step(act(obs))
            t, done = t + 1, terminated or truncated
            if t % every == 0 or done:
                states.append(np.asarray(obs))
                steps.append(t)
                if frames is not None:
                    frames.append(env.render())
    finally:
        env.close()
    if frames is None:
        frames = drawn_frames(env_id, states, steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, [np.asarray(f, dtype=np.uint8) for f in frames],
                    duration=1000 / fps, loop=0)
    return path, len(frames), renderer


def drawn_frames(env_id: str, states: list[np.ndarray], steps: list[int] | None = None
                 ) -> list[np.ndarray]:
    """Each state as an RGB array drawn with matplotlib, labelled with its step (`steps`;
    default 0, 1, ...): CartPole as a cart and pole, any other env as one bar per observation
    feature (on one scale for the whole episode)."""
    steps = list(range(len(states))) if steps is None else steps
    if env_id.startswith("CartPole"):
        from agents.gym_basics import matplotlib_frames

        return matplotlib_frames(states, steps)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    states = [np.atleast_1d(s) for s in states]  # a discrete observation: one bar
    fig = Figure(figsize=(4, 2.4), dpi=75, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bound = float(np.max(np.abs(states))) or 1.0
    bars = ax.bar(np.arange(len(states[0])), states[0], color="C0")
    ax.set(ylim=(-bound, bound), xlabel="observation feature", title=env_id)
    frames = []
    for t, s in zip(steps, states):
        for b, v in zip(bars, s):
            b.set_height(v)
        ax.set_title(f"{env_id}  t={t}", fontsize=9)
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return frames
