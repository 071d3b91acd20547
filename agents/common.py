"""What our own PyTorch agents share: the config keys, the environment checks, the evaluation,
the logging on the `env_step` axis, best/last checkpoints and `--resume`, one optimizer step,
and the GIF of an episode.

An RL loop is not an epoch loop: each agent interacts with its environment in its own loop
(one step at a time, whole episodes, or vectorized rollouts) and reports to an `AgentLoop`:
`loop.episode(ret, length)` when a training episode ends, `loop.advance(n)` after `n` more
environment steps. The loop evaluates every `eval_every` steps on a separate environment with
its own seeds, keeps the best weights, writes `checkpoints/last.pt` every `checkpoint_every`
steps and on interrupt, and says when to stop (`total_steps`, or solved at `stop_return`).

An agent is a small class with `policy` (the module that is kept, evaluated and explained:
observations -> action logits or Q-values), `train(loop)`, and `state_dict` /
`load_state_dict` (networks, optimizers, counters, a replay buffer: tensors, numpy arrays and
plain containers only, as `labs.checkpoint` requires).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labs import ConfigError, Lab, LabConfig, LabError, checkpoint, option

EVAL_SEED_OFFSET = 10_000  # evaluation episodes use their own seeds, never the training ones
CARTPOLE_FEATURES = ["cart position", "cart velocity", "pole angle", "pole angular velocity"]
CARTPOLE_ACTIONS = ["push left", "push right"]


@dataclass
class AgentConfig(LabConfig):
    env_id: str = option("CartPole-v1", "Gymnasium environment id (discrete actions)")
    total_steps: int = option(100_000, "environment steps to train for (at most)", min=1)
    hidden: list[int] = option([64, 64], "hidden layer widths", min=1)
    lr: float = option(1e-3, "learning rate", gt=0)
    gamma: float = option(0.99, "discount factor", min=0, max=1)
    grad_clip: float = option(10.0, "clip the gradient norm to this value (0: off)", min=0)
    eval_every: int = option(5000, "environment steps between evaluations", min=1)
    eval_episodes: int = option(20, "greedy evaluation episodes, each with its own seed",
                                min=1)
    stop_return: float = option(475.0, "stop once an evaluation's mean return reaches this "
                                       "(CartPole-v1 counts as solved at 475; 0: train all "
                                       "total_steps)", min=0)
    checkpoint_every: int = option(10_000, "environment steps between writes of "
                                           "checkpoints/last.pt (also at the end and on "
                                           "interrupt)", min=1)
    record_video: bool = option(False, "render one greedy episode of the kept agent to "
                                       "figures/episode.gif (logged as a video)")
    explain_states: int = option(100, "states from the agent's own rollouts explained for "
                                      "the aggregate 'which features drive which action' "
                                      "figure", min=1)

    def validate(self) -> None:
        super().validate()
        check_env(self.env_id)


# -- environments ----------------------------------------------------------------------------


def make_env(env_id: str, **kwargs: Any):
    """`gym.make`, with an unknown id as one line (ConfigError) instead of gymnasium's error."""
    import gymnasium as gym

    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        raise LabError(f"environment {env_id} needs a package that is not installed: "
                       f"{str(e).splitlines()[0]}") from None
    except gym.error.Error as e:
        import difflib

        close = difflib.get_close_matches(env_id, list(gym.registry), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown environment id '{env_id}' ({type(e).__name__}){hint}"
                          ) from None


def check_env(env_id: str) -> tuple[int, int]:
    """(observation size, number of actions) of `env_id`; ConfigError when our agents cannot
    act in it (they need flat Box observations and a Discrete action space)."""
    import gymnasium as gym

    env = make_env(env_id)
    try:
        obs, act = env.observation_space, env.action_space
    finally:
        env.close()
    if not isinstance(act, gym.spaces.Discrete):
        raise ConfigError(f"{env_id} has a continuous action space ({act}); this agent picks "
                          f"one of n discrete actions: choose an environment with Discrete "
                          f"actions (CartPole-v1, Acrobot-v1, ...) or a continuous-action "
                          f"agent such as SAC")
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        raise ConfigError(f"{env_id} has observations {obs}; this agent needs flat vectors "
                          f"(a 1-D Box)")
    return int(obs.shape[0]), int(act.n)


def names(env_id: str, n_obs: int, n_act: int) -> tuple[list[str], list[str]]:
    """Readable names of the observation features and actions (CartPole's, else x0.., a0..)."""
    if env_id.startswith("CartPole"):
        return list(CARTPOLE_FEATURES), list(CARTPOLE_ACTIONS)
    return [f"x{i}" for i in range(n_obs)], [f"action {i}" for i in range(n_act)]


def mlp(n_in: int, hidden: list[int], n_out: int, activation: type[nn.Module] = nn.ReLU,
        out_gain: float | None = None) -> nn.Sequential:
    """A dense network. With `out_gain`, every layer is initialized orthogonally (gain sqrt(2)
    for the hidden ones, `out_gain` for the last: a small one starts a policy near uniform),
    as Stable-Baselines3's actor-critic policies are."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), activation()]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    if out_gain is not None:
        linear = [m for m in layers if isinstance(m, nn.Linear)]
        for m in linear:
            nn.init.orthogonal_(m.weight, out_gain if m is linear[-1] else math.sqrt(2))
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


# -- one optimizer step, shared by every agent -----------------------------------------------


def optimize(optimizer: torch.optim.Optimizer, loss: torch.Tensor,
             params: list[torch.Tensor], grad_clip: float = 0.0) -> float:
    """Zero the gradients, backpropagate `loss`, clip their norm (when `grad_clip` > 0) and
    step; returns the gradient norm before clipping (logged: a spike says the step was big)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:
        norm = torch.linalg.vector_norm(
            torch.stack([p.grad.detach().norm() for p in params if p.grad is not None]))
    optimizer.step()
    return float(norm)


# -- evaluation ------------------------------------------------------------------------------


@torch.no_grad()
def greedy_episodes(policy: nn.Module, env_id: str, episodes: int, seed: int,
                    device: torch.device | str = "cpu", keep_states: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Returns and lengths of `episodes` greedy episodes (argmax of the policy's outputs),
    episode i seeded with `seed + i` and all run side by side (one batched forward per step).
    With `keep_states`, also every observation the policy acted on, episode by episode."""
    envs = [make_env(env_id) for _ in range(episodes)]
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)])
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=int)
    alive = np.ones(episodes, dtype=bool)
    states: list[list[np.ndarray]] = [[] for _ in range(episodes)]
    was_training = policy.training
    policy.eval()
    while alive.any():
        idx = np.flatnonzero(alive)
        x = torch.as_tensor(obs[idx], dtype=torch.float32, device=device)
        actions = policy(x).argmax(-1).cpu().numpy()
        for j, a in zip(idx, actions):
            if keep_states:
                states[j].append(obs[j].copy())
            o, r, terminated, truncated, _ = envs[j].step(int(a))
            obs[j] = o
            returns[j] += r
            lengths[j] += 1
            if terminated or truncated:
                alive[j] = False
    policy.train(was_training)
    for e in envs:
        e.close()
    kept = np.concatenate([np.asarray(s) for s in states]) if keep_states else None
    return returns, lengths, kept


def greedy_action(policy: nn.Module, device: Any = "cpu"):
    """observation -> the policy's greedy action (argmax of its outputs), as an int."""
    @torch.no_grad()
    def act(obs: np.ndarray) -> int:
        return int(policy(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
                   .argmax(-1))

    return act


# -- the loop every agent reports to ---------------------------------------------------------


class AgentLoop:
    """Counts environment steps and episodes, logs them on the `env_step` axis, evaluates,
    checkpoints (best.pt: the best evaluated weights; last.pt: everything to resume), shows
    progress and says when to stop."""

    def __init__(self, run: Any, cfg: AgentConfig, agent: Any):
        self.run, self.cfg, self.agent = run, cfg, agent
        self.device = run.device
        self.env_steps = 0
        self.episodes = 0
        self.best = -math.inf
        self.best_step = -1
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.solved_step = -1
        self.evals: list[tuple[int, float, float]] = []  # (env_step, mean, std)
        self.train_returns: list[float] = []
        self.train_steps: list[int] = []  # the env step at which each training episode ended
        self.next_eval = cfg.eval_every
        self.next_ckpt = cfg.checkpoint_every
        self.done = False
        self.seconds = 0.0
        self._bar = None
        self._t0 = 0.0

    @property
    def ckdir(self) -> Path:
        return self.run.checkpoints

    # -- what the agent's own loop calls ---------------------------------------------------

    def episode(self, ret: float, length: int) -> None:
        """A training episode ended (at the current `env_steps`)."""
        self.episodes += 1
        self.train_returns.append(float(ret))
        self.train_steps.append(self.env_steps)
        self.run.log({"episode_return": float(ret), "episode_length": int(length),
                      "episodes": self.episodes}, step=self.env_steps, axis="env_step")

    def log(self, metrics: dict[str, float]) -> None:
        """Training scalars of the agent (losses, epsilon) at the current step."""
        self.run.log(metrics, step=self.env_steps, axis="env_step")

    def advance(self, n: int) -> bool:
        """`n` more environment steps were taken; evaluate / checkpoint when due. Returns
        whether to stop."""
        self.env_steps += n
        if self._bar is not None:
            self._bar.update(n)
        if self.env_steps >= self.next_eval:
            self.next_eval = (self.env_steps // self.cfg.eval_every + 1) * self.cfg.eval_every
            self.evaluate()
        if self.env_steps >= self.cfg.total_steps:
            self.done = True
        if self.env_steps >= self.next_ckpt or self.done:
            self.next_ckpt = ((self.env_steps // self.cfg.checkpoint_every + 1)
                              * self.cfg.checkpoint_every)
            self.save_last()
        return self.done

    # -- driving the agent -----------------------------------------------------------------

    def train(self) -> None:
        """Resume when asked, then let the agent interact until done; last.pt on interrupt."""
        if self.run.resuming:
            self.resume()
        if self.done:
            return
        self._bar = self.run.bar(range(self.cfg.total_steps), desc=self.run.lab,
                                 total=self.cfg.total_steps)
        if hasattr(self._bar, "update"):
            self._bar.update(self.env_steps)
        else:
            self._bar = None
        self._t0 = time.perf_counter()
        try:
            self.agent.train(self)
        except KeyboardInterrupt:
            self.save_last()
            raise
        finally:
            self.seconds += time.perf_counter() - self._t0
            if self._bar is not None:
                self._bar.close()
        if not self.evals or self.evals[-1][0] != self.env_steps:
            self.evaluate()  # the last weights are evaluated too
            self.save_last()

    def evaluate(self) -> float:
        cfg = self.cfg
        returns, lengths, _ = greedy_episodes(self.agent.policy, cfg.env_id, cfg.eval_episodes,
                                              cfg.seed + EVAL_SEED_OFFSET, self.device)
        mean, std = float(returns.mean()), float(returns.std())
        self.evals.append((self.env_steps, mean, std))
        self.run.log({"eval_return": mean, "eval_return_std": std,
                      "eval_length": float(lengths.mean())},
                     step=self.env_steps, axis="env_step")
        if mean > self.best:
            self.best, self.best_step = mean, self.env_steps
            self.best_weights = {k: v.detach().clone()
                                 for k, v in self.agent.policy.state_dict().items()}
            checkpoint.save({"model": self.best_weights, "env_step": self.env_steps,
                             "eval_return": mean}, self.ckdir / "best.pt")
        if cfg.stop_return > 0 and mean >= cfg.stop_return:
            if self.solved_step < 0:
                self.solved_step = self.env_steps
            self.done = True
        return mean

    # -- last.pt and --resume --------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        from labs import rng_state

        return {"agent": self.agent.state_dict(), "env_steps": self.env_steps,
                "episodes": self.episodes, "best": self.best, "best_step": self.best_step,
                "best_weights": self.best_weights, "solved_step": self.solved_step,
                "evals": [list(e) for e in self.evals],
                "train_returns": np.asarray(self.train_returns),
                "train_steps": np.asarray(self.train_steps, dtype=np.int64),
                "seconds": self.seconds + (time.perf_counter() - self._t0 if self._t0 else 0),
                "done": self.done, "rng": rng_state()}

    def save_last(self) -> None:
        self.run.tracker.flush()  # the rows of every step last.pt holds are on disk first
        checkpoint.save(self.state_dict(), self.ckdir / "last.pt")

    def resume(self) -> None:
        """Continue from last.pt: the agent (networks, optimizers, replay buffer), the step
        and episode counters, the best weights so far and the random generators. Rows logged
        after that checkpoint are dropped (they are logged again)."""
        from labs import set_rng_state

        last = self.ckdir / "last.pt"
        if last.is_file():
            state = checkpoint.load(last, self.device, require=("agent", "env_steps"))
            try:
                self.agent.load_state_dict(state["agent"])
            except (RuntimeError, KeyError, ValueError) as e:
                raise LabError(f"checkpoint {last} does not fit this agent: "
                               f"{str(e).splitlines()[0]}") from None
            self.env_steps, self.episodes = int(state["env_steps"]), int(state["episodes"])
            self.best, self.best_step = float(state["best"]), int(state["best_step"])
            self.best_weights = state["best_weights"]
            self.solved_step = int(state["solved_step"])
            self.evals = [(int(s), float(m), float(d)) for s, m, d in state["evals"]]
            self.train_returns = [float(r) for r in np.asarray(state["train_returns"])]
            self.train_steps = [int(s) for s in np.asarray(state["train_steps"])]
            self.seconds = float(state["seconds"])
            self.done = bool(state["done"])
            set_rng_state(state["rng"])
        cfg = self.cfg
        self.next_eval = (self.env_steps // cfg.eval_every + 1) * cfg.eval_every
        self.next_ckpt = (self.env_steps // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        self.run.tracker.forget_after(self.env_steps, "env_step")

    # -- after training --------------------------------------------------------------------

    def kept_policy(self) -> nn.Module:
        """The agent's policy with the best evaluated weights loaded (the last ones if it was
        never evaluated)."""
        policy = self.agent.policy
        if self.best_weights is not None:
            policy.load_state_dict(self.best_weights)
        return policy

    def metrics(self) -> dict[str, float]:
        last = self.evals[-1] if self.evals else (self.env_steps, math.nan, math.nan)
        return {"best_eval_return": self.best, "best_eval_step": self.best_step,
                "last_eval_return": last[1], "solved_step": self.solved_step,
                "env_steps": self.env_steps, "episodes": self.episodes,
                "train_seconds": round(self.seconds, 2),
                "steps_per_second": round(self.env_steps / max(self.seconds, 1e-9), 1)}


# -- the lab every own agent is ------------------------------------------------------------


class AgentLab(Lab):
    """Shared by `cartpole-dqn`, `cartpole-reinforce` and `cartpole-a2c`: build the agent, run
    the loop, keep the best policy, evaluate it, plot, record a GIF and explain the policy."""

    lesson = "rl"
    explains = "tabular"  # the observation features of a state, explained with LIME
    headline = "eval_return"
    Config = AgentConfig

    def make_agent(self, cfg: Any, n_obs: int, n_act: int, device: torch.device) -> Any:
        raise NotImplementedError

    def data(self, cfg: Any) -> None:
        return None  # an agent's data is its environment, made fresh where it is needed

    def model(self, cfg: Any, data: Any = None) -> nn.Module:
        """A fresh policy network (what is saved as checkpoints/model.pt and reloaded)."""
        n_obs, n_act = check_env(cfg.env_id)
        return self.make_agent(cfg, n_obs, n_act, torch.device("cpu")).policy

    def run(self, cfg: Any, run: Any) -> dict:
        n_obs, n_act = check_env(cfg.env_id)
        agent = self.make_agent(cfg, n_obs, n_act, run.device)
        loop = AgentLoop(run, cfg, agent)
        loop.train()
        policy = loop.kept_policy()
        run.save_model(policy)
        metrics = self.evaluate(cfg, {"": policy}, None)
        metrics.update(loop.metrics())
        run.figure("returns", returns_figure(loop, self.name or type(self).__name__))
        if cfg.record_video:
            from agents.episode_gif import episode_gif

            path, frames, renderer = episode_gif(
                cfg.env_id, greedy_action(policy, run.device),
                run.dir / "figures" / "episode.gif", cfg.seed + EVAL_SEED_OFFSET, fps=25)
            run.video("episode", path, fps=25)
            run.table("video", ["file", "frames", "renderer"], [[path.name, frames, renderer]])
        if cfg.explain:
            from agents.policy import explain_policy

            metrics.update(explain_policy(run, self.subject(cfg, policy, run.device,
                                                            cfg.explain_states), cfg))
        return metrics

    def evaluate(self, cfg: Any, models: dict[str, Any], data: Any) -> dict[str, float]:
        """The kept policy, greedy, over `eval_episodes` seeded episodes (the same episodes
        after training and in `lab eval`): mean ± std return."""
        policy = models[""]
        device = next(policy.parameters()).device
        returns, lengths, _ = greedy_episodes(policy, cfg.env_id, cfg.eval_episodes,
                                              cfg.seed + EVAL_SEED_OFFSET, device)
        return {"eval_return": float(returns.mean()), "eval_return_std": float(returns.std()),
                "eval_length": float(lengths.mean()),
                "solved": float(returns.mean() >= 475.0) if cfg.env_id == "CartPole-v1"
                else float("nan")}

    def action_probabilities(self, policy: nn.Module):
        """(N, n_features) float32 -> (N, n_actions) probabilities of the policy's actions
        (softmax of its logits, or of a DQN's Q-values)."""
        from explain import torch_predict

        return torch_predict(policy, softmax=True)

    def subject(self, cfg: Any, policy: nn.Module, device: Any, n: int):
        from agents.policy import policy_subject, rollout_states

        n_obs, n_act = check_env(cfg.env_id)
        feats, acts = names(cfg.env_id, n_obs, n_act)
        states = rollout_states(policy, cfg.env_id, n, cfg.seed, device)
        return policy_subject(self.action_probabilities(policy), states, feats, acts)

    def subjects(self, cfg: Any, model: Any, data: Any) -> dict:
        policy = model if isinstance(model, nn.Module) else next(iter(model.values()))
        device = next(policy.parameters()).device
        return {"": self.subject(cfg, policy, device, cfg.explain_states)}


# -- figures ---------------------------------------------------------------------------------


def returns_figure(loop: AgentLoop, title: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    if loop.train_returns:
        r = np.asarray(loop.train_returns)
        window = max(1, min(50, len(r) // 10))
        c = np.cumsum(np.insert(r, 0, 0.0))
        i = np.arange(1, len(r) + 1)
        smooth = (c[i] - c[np.maximum(0, i - window)]) / (i - np.maximum(0, i - window))
        ax.plot(loop.train_steps, r, ".", ms=1, alpha=0.3, color="grey")
        ax.plot(loop.train_steps, smooth, color="C0",
                label=f"training episodes (exploring; mean of {window})")
    if loop.evals:
        steps, means, stds = map(np.asarray, zip(*loop.evals))
        ax.errorbar(steps, means, yerr=stds, color="C1", marker="o", ms=3, capsize=2,
                    label="evaluation (greedy, mean ± std)")
    ax.axhline(475, color="C2", ls=":", label="solved (475)")
    ax.set(xlabel="environment step", ylabel="return",
           title=f"{title}: training and evaluation returns")
    ax.legend(loc="upper left", fontsize=8)
    return fig
