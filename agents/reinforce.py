"""Our own REINFORCE with a baseline on CartPole-v1: whole episodes are sampled from the policy,
each action's log-probability is pushed up in proportion to how much better than expected the
return that followed it was (the return minus a learned state value, the baseline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.common import AgentConfig, AgentLab, make_env, mlp, optimize
from labs import option


@dataclass
class Config(AgentConfig):
    total_steps: int = option(300_000, "environment steps to train for (at most)")
    hidden: list[int] = option([64, 64], "hidden layer widths (policy and value networks)")
    lr: float = option(2e-3, "Adam learning rate (policy and value networks)")
    episodes_per_update: int = option(8, "episodes sampled (side by side) per update", min=1)
    baseline: bool = option(True, "subtract a learned state value from the return (less "
                                  "variance, same expected gradient)")
    normalize: bool = option(True, "scale the advantages of an update to mean 0, std 1")
    value_coef: float = option(0.5, "weight of the value network's squared error", min=0)
    entropy_coef: float = option(0.0, "entropy bonus (keeps the policy exploring)", min=0)
    grad_clip: float = option(0.0, "clip the gradient norm to this value (0: off)")
    eval_every: int = option(10_000, "environment steps between evaluations")


class ReinforceAgent:
    def __init__(self, cfg: Config, n_obs: int, n_act: int, device: torch.device):
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed)
        self.actor = mlp(n_obs, cfg.hidden, n_act, nn.Tanh, out_gain=0.01).to(device)
        self.critic = mlp(n_obs, cfg.hidden, 1, nn.Tanh, out_gain=1.0).to(device)
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr)
        self.rng = np.random.default_rng(cfg.seed)
        self.updates = 0

    @property
    def policy(self) -> nn.Module:
        return self.actor

    @torch.no_grad()
    def sample_episodes(self, envs: list) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One episode per environment, all side by side (one batched forward per step):
        [(observations, actions, rewards)] per episode."""
        obs = np.stack([e.reset(seed=int(self.rng.integers(2**31)))[0] for e in envs])
        traj: list[list[tuple]] = [[] for _ in envs]
        alive = np.ones(len(envs), dtype=bool)
        while alive.any():
            idx = np.flatnonzero(alive)
            logits = self.actor(torch.as_tensor(obs[idx], dtype=torch.float32,
                                                device=self.device))
            actions = torch.distributions.Categorical(logits=logits).sample().cpu().numpy()
            for j, a in zip(idx, actions):
                o2, r, terminated, truncated, _ = envs[j].step(int(a))
                traj[j].append((obs[j].copy(), int(a), float(r)))
                obs[j] = o2
                if terminated or truncated:
                    alive[j] = False
        return [tuple(np.asarray(x) for x in zip(*t)) for t in traj]

    def returns(self, rewards: np.ndarray) -> np.ndarray:
        g, out = 0.0, np.zeros(len(rewards), np.float32)
        for t in range(len(rewards) - 1, -1, -1):
            g = rewards[t] + self.cfg.gamma * g
            out[t] = g
        return out

    def learn(self, episodes: list) -> dict[str, float]:
        c = self.cfg
        obs = torch.as_tensor(np.concatenate([e[0] for e in episodes]), dtype=torch.float32,
                              device=self.device)
        act = torch.as_tensor(np.concatenate([e[1] for e in episodes]), device=self.device)
        ret = torch.as_tensor(np.concatenate([self.returns(e[2]) for e in episodes]),
                              device=self.device)
        dist = torch.distributions.Categorical(logits=self.actor(obs))
        value = self.critic(obs).squeeze(-1)
        adv = ret - value.detach() if c.baseline else ret
        if c.normalize and len(adv) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pi_loss = -(dist.log_prob(act) * adv).mean()
        v_loss = nn.functional.mse_loss(value, ret) if c.baseline else torch.zeros(())
        entropy = dist.entropy().mean()
        loss = pi_loss + c.value_coef * v_loss - c.entropy_coef * entropy
        optimize(self.opt, loss, self.params, c.grad_clip)
        self.updates += 1
        return {"policy_loss": float(pi_loss.detach()), "value_loss": float(v_loss.detach()),
                "entropy": float(entropy.detach()), "updates": self.updates}

    def train(self, loop) -> None:
        envs = [make_env(self.cfg.env_id) for _ in range(self.cfg.episodes_per_update)]
        while not loop.done:
            episodes = self.sample_episodes(envs)
            for e in episodes:
                loop.episode(float(e[2].sum()), len(e[2]))
            loop.log(self.learn(episodes))
            loop.advance(sum(len(e[2]) for e in episodes))
        for e in envs:
            e.close()

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "opt": self.opt.state_dict(), "rng": self.rng.bit_generator.state,
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.opt.load_state_dict(state["opt"])
        self.rng.bit_generator.state = state["rng"]
        self.updates = int(state["updates"])


class CartPoleReinforce(AgentLab):
    """Our own REINFORCE with a learned baseline on CartPole-v1 (Monte-Carlo policy gradient)."""

    tags = ("rl", "policy-gradient", "deep-rl")
    Config = Config

    def make_agent(self, cfg: Config, n_obs: int, n_act: int, device: torch.device):
        return ReinforceAgent(cfg, n_obs, n_act, device)
