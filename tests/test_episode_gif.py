"""`agents.episode_gif`, the one "play an episode, write a GIF" of our own agents and the SB3
labs: gymnasium's frames or, without pygame, matplotlib's (CartPole drawn, any other env as
bars), every second state, the frame cap. The labs' GIFs are in test_rl_agents / test_sb3."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from agents.episode_gif import DRAWN, RENDERED, episode_gif


@pytest.fixture
def no_pygame(monkeypatch):
    """As if pygame were not installed: gymnasium's renderers then raise
    DependencyNotInstalled."""
    monkeypatch.setitem(sys.modules, "pygame", None)


def _gif(path) -> tuple[int, tuple[int, int]]:
    with Image.open(path) as im:
        return im.n_frames, im.size


def test_without_pygame_another_env_than_cartpole_is_drawn_as_bars(tmp_path, no_pygame):
    # our own agents used to refuse this (LabError: "record_video needs pygame")
    path, n, renderer = episode_gif("Acrobot-v1", lambda obs: 0, tmp_path / "a.gif", seed=0,
                                    max_frames=4)
    assert renderer == DRAWN and _gif(path) == (n, (300, 180))  # the bars' figure
    _, _, renderer = episode_gif("CartPole-v1", lambda obs: 0, tmp_path / "c.gif", seed=0)
    assert renderer == DRAWN and _gif(tmp_path / "c.gif")[1] == (300, 150)  # cart and pole


def test_the_frame_cap_cuts_a_long_episode(tmp_path, no_pygame):
    # Acrobot's random-ish swing never reaches the top within its 500 steps
    path, n, _ = episode_gif("Acrobot-v1", lambda obs: 1, tmp_path / "a.gif", seed=0,
                             max_frames=5, every=1)
    assert n == 5 and _gif(path)[0] == 5


def _steps(seed: int) -> int:
    """How long CartPole lasts when always pushed left."""
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    t, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(0)
        t, done = t + 1, terminated or truncated
    return t


@pytest.mark.parametrize("seed", [0, 1])
def test_every_second_state_and_the_last_become_frames(tmp_path, no_pygame, seed):
    steps = _steps(seed)
    _, all_states, _ = episode_gif("CartPole-v1", lambda obs: 0, tmp_path / "1.gif", seed,
                                   every=1)
    _, halved, _ = episode_gif("CartPole-v1", lambda obs: 0, tmp_path / "2.gif", seed)
    assert all_states == steps + 1  # the reset state and one a step
    assert halved == steps // 2 + 1 + steps % 2  # states 0, 2, 4, ... and the last


def test_gymnasiums_frames_are_used_when_it_can_render(tmp_path, monkeypatch):
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    shades = iter(range(0, 256, 8))  # each frame its own (a GIF merges equal frames)
    monkeypatch.setattr(CartPoleEnv, "render",
                        lambda self: np.full((20, 30, 3), next(shades), dtype=np.uint8))
    path, n, renderer = episode_gif("CartPole-v1", lambda obs: 0, tmp_path / "e.gif", seed=0)
    steps = _steps(0)
    assert renderer == RENDERED and _gif(path) == (n, (30, 20))
    assert n == steps // 2 + 1 + steps % 2  # thinned as the drawn frames are
