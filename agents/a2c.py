"""Our own advantage actor-critic (A2C) on CartPole-v1 over Gymnasium vector environments:
`n_envs` copies step together for `n_steps`, then one update pushes each action's
log-probability up by its advantage (the n-step return minus the critic's value) and fits the
critic to those returns. Defaults are Stable-Baselines3's A2C ones (rl-baselines3-zoo uses
them for CartPole with 8 environments)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.common import AgentConfig, AgentLab, mlp, optimize
from labs import option


@dataclass
class Config(AgentConfig):
    total_steps: int = option(200_000, "environment steps to train for (at most; all "
                                       "environments together)")
    hidden: list[int] = option([64, 64], "hidden layer widths (actor and critic, separate)")
    lr: float = option(7e-4, "RMSprop learning rate")
    n_envs: int = option(8, "environments stepped together (a gymnasium vector env)", min=1)
    n_steps: int = option(5, "steps per environment between updates", min=1)
    gae_lambda: float = option(1.0, "GAE lambda (1: plain n-step returns)", min=0, max=1)
    value_coef: float = option(0.5, "weight of the critic's squared error", min=0)
    entropy_coef: float = option(0.0, "entropy bonus (keeps the policy exploring)", min=0)
    grad_clip: float = option(0.5, "clip the gradient norm to this value (0: off)")
    eval_every: int = option(10_000, "environment steps between evaluations")


class ActorCritic(nn.Module):
    """Separate actor and critic networks; calling it gives the actor's action logits."""

    def __init__(self, n_obs: int, hidden: list[int], n_act: int):
        super().__init__()
        self.pi = mlp(n_obs, hidden, n_act, nn.Tanh, out_gain=0.01)
        self.vf = mlp(n_obs, hidden, 1, nn.Tanh, out_gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pi(x)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.vf(x).squeeze(-1)


class A2CAgent:
    def __init__(self, cfg: Config, n_obs: int, n_act: int, device: torch.device):
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed)
        self.net = ActorCritic(n_obs, cfg.hidden, n_act).to(device)
        self.params = list(self.net.parameters())
        self.opt = torch.optim.RMSprop(self.params, lr=cfg.lr, alpha=0.99, eps=1e-5)
        self.updates = 0

    @property
    def policy(self) -> nn.Module:
        return self.net

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    def train(self, loop) -> None:
        import gymnasium as gym

        c = self.cfg
        envs = gym.make_vec(c.env_id, num_envs=c.n_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
        obs, _ = envs.reset(seed=c.seed + loop.env_steps)  # resumed: new episodes
        ep_ret, ep_len = np.zeros(c.n_envs), np.zeros(c.n_envs, dtype=int)
        while not loop.done:
            o_buf, a_buf, r_buf, d_buf = [], [], [], []
            for _ in range(c.n_steps):
                with torch.no_grad():
                    logits = self.net(self.tensor(obs))
                    actions = torch.distributions.Categorical(logits=logits).sample()
                a = actions.cpu().numpy()
                obs2, r, terminated, truncated, info = envs.step(a)
                ep_ret += r  # the episode's own rewards, before any bootstrapping
                r = r.astype(np.float32)
                if truncated.any():  # a time-limit cut still has a future: bootstrap it
                    cut = np.flatnonzero(truncated & ~terminated)
                    if len(cut):
                        final = np.stack([info["final_obs"][i] for i in cut])
                        with torch.no_grad():
                            r[cut] += c.gamma * self.net.value(self.tensor(final)).cpu().numpy()
                o_buf.append(obs)
                a_buf.append(a)
                r_buf.append(r)
                d_buf.append((terminated | truncated).astype(np.float32))
                obs = obs2
                ep_len += 1
                self._episodes(loop, ep_ret, ep_len, terminated | truncated)
            loop.log(self.learn(o_buf, a_buf, r_buf, d_buf, obs))
            loop.advance(c.n_steps * c.n_envs)
        envs.close()

    def _episodes(self, loop, ep_ret, ep_len, done) -> None:
        for i in np.flatnonzero(done):
            loop.episode(float(ep_ret[i]), int(ep_len[i]))
            ep_ret[i], ep_len[i] = 0.0, 0

    def learn(self, o_buf, a_buf, r_buf, d_buf, last_obs) -> dict[str, float]:
        c = self.cfg
        obs = self.tensor(np.stack(o_buf))                      # (T, N, n_obs)
        act = torch.as_tensor(np.stack(a_buf), device=self.device)
        rew, done = np.stack(r_buf), np.stack(d_buf)              # (T, N)
        values = self.net.value(obs)                              # (T, N)
        with torch.no_grad():
            nxt = self.net.value(self.tensor(last_obs)).cpu().numpy()
        v = values.detach().cpu().numpy()
        adv = np.zeros_like(rew)
        gae = np.zeros(rew.shape[1], np.float32)
        for t in range(len(rew) - 1, -1, -1):  # GAE; lambda = 1: n-step returns minus V
            next_v = nxt if t == len(rew) - 1 else v[t + 1]
            delta = rew[t] + c.gamma * next_v * (1 - done[t]) - v[t]
            gae = delta + c.gamma * c.gae_lambda * (1 - done[t]) * gae
            adv[t] = gae
        adv_t = self.tensor(adv)
        returns = adv_t + values.detach()
        dist = torch.distributions.Categorical(logits=self.net(obs))
        pi_loss = -(dist.log_prob(act) * adv_t).mean()
        v_loss = nn.functional.mse_loss(values, returns)
        entropy = dist.entropy().mean()
        loss = pi_loss + c.value_coef * v_loss - c.entropy_coef * entropy
        norm = optimize(self.opt, loss, self.params, c.grad_clip)
        self.updates += 1
        return {"policy_loss": float(pi_loss.detach()), "value_loss": float(v_loss.detach()),
                "entropy": float(entropy.detach()), "grad_norm": norm,
                "updates": self.updates}

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(),
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.updates = int(state["updates"])


class CartPoleA2C(AgentLab):
    """Our own advantage actor-critic (A2C) on CartPole-v1 over 8 vectorized environments."""

    tags = ("rl", "actor-critic", "deep-rl")
    Config = Config

    def make_agent(self, cfg: Config, n_obs: int, n_act: int, device: torch.device):
        return A2CAgent(cfg, n_obs, n_act, device)
