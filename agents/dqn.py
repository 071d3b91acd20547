"""Our own DQN on CartPole-v1: a replay buffer, a target network, an epsilon schedule, the Huber
loss and (by default) the double-DQN target. Defaults are rl-baselines3-zoo's CartPole ones."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.common import AgentConfig, AgentLab, make_env, mlp, optimize
from labs import ConfigError, option


@dataclass
class Config(AgentConfig):
    total_steps: int = option(50_000, "environment steps to train for (at most)")
    hidden: list[int] = option([256, 256], "hidden layer widths of the Q-network")
    lr: float = option(2.3e-3, "Adam learning rate")
    batch_size: int = option(64, "transitions per gradient step", min=1)
    buffer_size: int = option(100_000, "replay buffer capacity (transitions)", min=1)
    learning_starts: int = option(1000, "random-ish steps collected before learning", min=0)
    train_freq: int = option(256, "environment steps between training phases", min=1)
    gradient_steps: int = option(128, "gradient steps per training phase", min=1)
    target_update: int = option(10, "environment steps between copies of the Q-network into "
                                     "the target network", min=1)
    exploration_fraction: float = option(0.16, "share of total_steps over which epsilon falls "
                                               "linearly from epsilon_start to epsilon_end",
                                         gt=0, max=1)
    epsilon_start: float = option(1.0, "exploration rate at the start", min=0, max=1)
    epsilon_end: float = option(0.04, "exploration rate after the decay", min=0, max=1)
    double: bool = option(True, "double DQN: the online network picks the next action, the "
                                "target network values it (less over-estimation)")
    eval_every: int = option(2500, "environment steps between evaluations")

    def validate(self) -> None:
        super().validate()
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size={self.batch_size} is larger than "
                              f"buffer_size={self.buffer_size}")


class Replay:
    """A ring buffer of transitions, as numpy arrays (so a checkpoint can hold it)."""

    def __init__(self, capacity: int, n_obs: int):
        self.obs = np.zeros((capacity, n_obs), np.float32)
        self.next_obs = np.zeros((capacity, n_obs), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminal = np.zeros(capacity, np.float32)  # terminated, not truncated
        self.pos = self.size = 0

    def add(self, o, a, r, o2, terminal) -> None:
        i = self.pos
        self.obs[i], self.actions[i], self.rewards[i] = o, a, r
        self.next_obs[i], self.terminal[i] = o2, terminal
        self.pos = (i + 1) % len(self.obs)
        self.size = min(self.size + 1, len(self.obs))

    def sample(self, n: int, rng: np.random.Generator, device: Any) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(self.size, size=n)
        return tuple(torch.as_tensor(a[idx], device=device) for a in (
            self.obs, self.actions, self.rewards, self.next_obs, self.terminal))

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"obs": self.obs[:n].copy(), "next_obs": self.next_obs[:n].copy(),
                "actions": self.actions[:n].copy(), "rewards": self.rewards[:n].copy(),
                "terminal": self.terminal[:n].copy(), "pos": self.pos, "size": n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = int(state["size"])
        if n > len(self.obs):
            raise ValueError(f"the saved replay buffer holds {n} transitions; this one has "
                             f"room for {len(self.obs)}")
        for key in ("obs", "next_obs", "actions", "rewards", "terminal"):
            getattr(self, key)[:n] = np.asarray(state[key])
        self.pos, self.size = int(state["pos"]), n


class DQNAgent:
    def __init__(self, cfg: Config, n_obs: int, n_act: int, device: torch.device):
        self.cfg, self.n_act, self.device = cfg, n_act, device
        torch.manual_seed(cfg.seed)
        self.q = mlp(n_obs, cfg.hidden, n_act).to(device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        self.replay = Replay(cfg.buffer_size, n_obs)
        self.rng = np.random.default_rng(cfg.seed)
        self.updates = 0

    @property
    def policy(self) -> nn.Module:
        return self.q  # greedy action = argmax of the Q-values

    def epsilon(self, step: int) -> float:
        c = self.cfg
        frac = min(1.0, step / (c.exploration_fraction * c.total_steps))
        return c.epsilon_start + frac * (c.epsilon_end - c.epsilon_start)

    @torch.no_grad()
    def act(self, obs: np.ndarray, eps: float) -> int:
        if self.rng.random() < eps:
            return int(self.rng.integers(self.n_act))
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)[None]
        return int(self.q(x).argmax(-1))

    def learn(self) -> float:
        """One gradient step on a sampled batch; returns the Huber loss."""
        c = self.cfg
        o, a, r, o2, term = self.replay.sample(c.batch_size, self.rng, self.device)
        with torch.no_grad():
            if c.double:  # online net picks, target net values
                a2 = self.q(o2).argmax(-1, keepdim=True)
                next_q = self.target(o2).gather(1, a2).squeeze(1)
            else:
                next_q = self.target(o2).max(-1).values
            y = r + c.gamma * (1 - term) * next_q
        q = self.q(o).gather(1, a[:, None]).squeeze(1)
        loss = nn.functional.smooth_l1_loss(q, y)  # Huber: big TD errors do not explode
        optimize(self.opt, loss, list(self.q.parameters()), c.grad_clip)
        self.updates += 1
        return float(loss.detach())

    def train(self, loop) -> None:
        c = self.cfg
        env = make_env(c.env_id)
        obs, _ = env.reset(seed=c.seed + loop.env_steps)  # a resumed run starts a new episode
        ret, length = 0.0, 0
        while not loop.done:
            step = loop.env_steps
            eps = self.epsilon(step) if step >= c.learning_starts else 1.0
            a = self.act(obs, eps)
            obs2, r, terminated, truncated, _ = env.step(a)
            # a time-limit cut is not a terminal state: its value is still bootstrapped
            self.replay.add(obs, a, r, obs2, float(terminated))
            obs, ret, length = obs2, ret + r, length + 1
            if terminated or truncated:
                loop.episode(ret, length)
                obs, _ = env.reset()
                ret, length = 0.0, 0
            step += 1
            if step % c.target_update == 0:
                self.target.load_state_dict(self.q.state_dict())
            if step > c.learning_starts and step % c.train_freq == 0:
                losses = [self.learn() for _ in range(c.gradient_steps)]
                loop.log({"loss": float(np.mean(losses)), "epsilon": eps,
                          "updates": self.updates})
            loop.advance(1)
        env.close()

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q.state_dict(), "target": self.target.state_dict(),
                "opt": self.opt.state_dict(), "replay": self.replay.state_dict(),
                "rng": self.rng.bit_generator.state, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["opt"])
        self.replay.load_state_dict(state["replay"])
        self.rng.bit_generator.state = state["rng"]
        self.updates = int(state["updates"])


class CartPoleDQN(AgentLab):
    """Our own DQN on CartPole-v1: replay buffer, target network, epsilon decay, double DQN."""

    tags = ("rl", "dqn", "deep-rl")
    Config = Config

    def make_agent(self, cfg: Config, n_obs: int, n_act: int, device: torch.device):
        return DQNAgent(cfg, n_obs, n_act, device)
