"""Stable-Baselines3 agents on Gymnasium: PPO, A2C, DQN and SAC with rl-baselines3-zoo's
hyperparameters, trained through the one bridge (`agents.sb3_bridge`) into the run directory,
tracker, checkpoints and progress bar that every lab shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from agents import sb3_bridge as bridge
from labs import Lab, LabConfig, option

# what each observation feature and each action means (LIME's labels); other envs: obs[i]
FEATURES = {
    "CartPole-v1": ["cart position", "cart velocity", "pole angle", "pole angular velocity"],
    "Acrobot-v1": ["cos θ1", "sin θ1", "cos θ2", "sin θ2", "θ1 velocity", "θ2 velocity"],
    "MountainCar-v0": ["position", "velocity"],
    "Pendulum-v1": ["cos θ", "sin θ", "angular velocity"],
    "LunarLander-v3": ["x", "y", "x velocity", "y velocity", "angle", "angular velocity",
                       "left leg contact", "right leg contact"],
}
ACTIONS = {
    "CartPole-v1": ["push left", "push right"],
    "Acrobot-v1": ["torque -1", "torque 0", "torque +1"],
    "MountainCar-v0": ["accelerate left", "no push", "accelerate right"],
    "LunarLander-v3": ["do nothing", "fire left engine", "fire main engine",
                       "fire right engine"],
}


@dataclass
class Config(LabConfig):
    algo: ClassVar[str] = "ppo"
    env_id: str = option("CartPole-v1", "Gymnasium environment id; its hyperparameters come "
                                        "from agents/hyperparams/<algo>.yml")
    n_timesteps: int = option(0, "environment steps to train (0: the YAML's n_timesteps)", min=0)
    n_envs: int = option(0, "parallel training environments (0: the YAML's n_envs)", min=0)
    learning_rate: Any = option(None, "learning rate: a number or lin_<x> (x falling linearly "
                                      "to 0); none: the YAML's")
    policy_kwargs: dict[str, Any] | None = option(None, "SB3 policy_kwargs, e.g. {net_arch: "
                                                        "[64, 64], activation_fn: tanh}; none: "
                                                        "the YAML's")
    hyperparams: dict[str, Any] = option({}, "any other constructor argument of the algorithm, "
                                             "over the YAML's, e.g. {n_steps: 64, gamma: 0.99}")
    eval_every: int = option(10_000, "environment steps between evaluations (0: none)", min=0)
    eval_episodes: int = option(5, "episodes per periodic evaluation", min=1)
    final_eval_episodes: int = option(20, "episodes of the final evaluation and of `lab eval`",
                                      min=1)
    log_every: int = option(1_000, "environment steps between SB3's logged losses "
                                   "(off-policy agents: every episode)", min=1)
    checkpoint_every: int = option(50_000, "environment steps between latest checkpoints",
                                   min=1)
    keep: Literal["best", "last"] = option("best", "the agent kept, evaluated and explained: "
                                                   "the best periodic evaluation's or the last")
    record_video: bool = option(False, "write one episode of the kept agent as a GIF")
    video_fps: int = option(30, "frames per second of the GIF", min=1)
    explain_rollout_steps: int = option(500, "steps of the agent's own rollouts whose states "
                                             "LIME explains", min=10)
    explain_states: int = option(50, "rollout states explained for the aggregate figure "
                                     "(which features drive which action; 0: none)", min=0)

    def validate(self) -> None:
        super().validate()
        bridge.check(self.algo, self)  # env id, extras, action space, hyperparameter names


class SB3Lab(Lab):
    """Shared by every SB3 lab: train through the bridge, evaluate, save, explain, record."""

    lesson = "rl"
    explains = "tabular"
    headline = "eval_return"
    Config = Config

    def data(self, cfg: Config) -> None:
        return None  # an agent's data is its environment

    def spec(self, cfg: Config) -> bridge.Spec:
        return bridge.resolve(cfg.algo, cfg)

    def run(self, cfg: Config, run) -> dict:
        spec = self.spec(cfg)
        run.table("hyperparameters", ["key", "value"],
                  [[k, str(v)] for k, v in sorted(spec.raw.items())])
        trained = bridge.train(run, spec, cfg)
        state, ckpt = trained.state, bridge.Checkpoints(run.checkpoints)
        self.agent, self.norm = trained.model, trained.norm
        if cfg.keep == "best" and ckpt.has("best"):
            self.agent = ckpt.load("best", spec, device=bridge.device(run.device, spec,
                                                                      cfg.device))
            self.norm = ckpt.norm("best")
        run.save_model(self.agent)
        metrics = self.evaluate(cfg, {"": self.agent}, None)
        recent = state.get("recent") or [float("nan")]
        metrics.update(best_eval_return=state.get("best_eval_return", float("nan")),
                       best_step=state.get("best_step", 0), env_steps=trained.model.num_timesteps,
                       episodes=state.get("episodes", 0),
                       train_return_last_100=float(np.mean(recent)),
                       train_seconds=trained.seconds,
                       steps_per_second=(trained.model.num_timesteps - trained.resumed_from)
                       / max(trained.seconds, 1e-9))
        run.figure("returns", returns_figure(run.dir / "metrics.jsonl", self.name or spec.env_id))
        if cfg.record_video:
            from agents.episode_gif import episode_gif

            path, frames, renderer = episode_gif(
                spec.env_id, bridge.deterministic_action(self.agent, spec, self.norm),
                run.dir / "figures" / "episode.gif", cfg.seed + bridge.FINAL_SEED_OFFSET,
                cfg.video_fps)
            run.video("episode", path, fps=cfg.video_fps)
            run.table("video", ["file", "frames", "renderer"], [[path.name, frames, renderer]])
            metrics["video_frames"] = float(frames)
        if cfg.explain and cfg.explain_states > 0:  # the aggregate, as for our own agents
            import dataclasses

            from agents.policy import explain_policy

            subject = self.subjects(cfg, self.agent, None)[""]
            subject = dataclasses.replace(subject, samples=subject.samples[:cfg.explain_states])
            metrics.update(explain_policy(run, subject, cfg))
        return metrics

    def evaluate(self, cfg: Config, models: dict[str, Any], data: Any) -> dict[str, float]:
        """The kept agent's deterministic return over `final_eval_episodes` seeded episodes:
        the same episodes after training and in `lab eval`."""
        return bridge.evaluate(models[""], self.spec(cfg), getattr(self, "norm", None),
                               cfg.final_eval_episodes, cfg.seed + bridge.FINAL_SEED_OFFSET)

    def save(self, path: Path, models: dict[str, Any]) -> None:
        """The kept agent as SB3's zip, `checkpoints/model.zip` (+ its VecNormalize
        statistics as numbers, `model_vecnormalize.npz`)."""
        folder = Path(path) / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        models[""].save(folder / "model.zip")
        if getattr(self, "norm", None) is not None:
            np.savez(folder / "model_vecnormalize.npz", **self.norm)

    def load(self, path: Path, cfg: Config, data: Any) -> dict[str, Any]:
        """`lab eval` / `lab explain`: the saved agent, never retrained."""
        ckpt = bridge.Checkpoints(Path(path) / "checkpoints")
        spec = self.spec(cfg)
        from labs import choose_device

        self.agent = ckpt.load("model", spec, device=bridge.device(
            choose_device(cfg.device), spec, cfg.device))
        self.norm = ckpt.norm("model")
        return {"": self.agent}

    def subjects(self, cfg: Config, model: Any, data: Any) -> dict[str, Any]:
        """LIME explains the policy over states from the agent's own rollouts."""
        spec = self.spec(cfg)
        norm = getattr(self, "norm", None)
        states = bridge.rollout_states(model, spec, norm, cfg.explain_rollout_steps,
                                       cfg.seed + bridge.EXPLAIN_SEED_OFFSET)
        predict, mode = bridge.policy_predict(model, spec, norm)
        features = FEATURES.get(spec.env_id) or [f"obs[{i}]" for i in range(states.shape[1])]
        actions = ACTIONS.get(spec.env_id) if mode == "classification" else None
        return {"": bridge.policy_subject(predict, states, features, actions, mode)}


def returns_figure(metrics_file: Path, title: str):
    """Training episodes' returns and the periodic evaluations against env steps."""
    import json

    from matplotlib.figure import Figure

    rows = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    ep = [(r["env_step"], r["episode_return"]) for r in rows if "episode_return" in r]
    ev = [(r["env_step"], r["eval/mean_return"], r["eval/std_return"]) for r in rows
          if "eval/mean_return" in r]
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    if ep:
        x, y = np.array(ep).T
        ax.plot(x, y, ".", ms=2, alpha=0.3, color="grey", label="training episode")
    if ev:
        x, m, s = np.array(ev).T
        ax.errorbar(x, m, s, color="C0", marker="o", capsize=3, label="evaluation (mean ± std)")
    ax.set(xlabel="environment steps", ylabel="return", title=title)
    if ep or ev:
        ax.legend(loc="best")
    return fig


# -- the labs --------------------------------------------------------------------------------


@dataclass
class CartPoleConfig(Config):
    algo: ClassVar[str] = "ppo"
    env_id: str = option("CartPole-v1", "Gymnasium environment id")


class CartPolePPO(SB3Lab):
    """SB3 PPO balances CartPole-v1 (zoo hyperparameters: 8 envs, 100k steps, 500 ± 0)."""

    tags = ("rl", "sb3", "ppo")
    Config = CartPoleConfig


@dataclass
class AcrobotConfig(Config):
    algo: ClassVar[str] = "a2c"
    env_id: str = option("Acrobot-v1", "Gymnasium environment id")


class AcrobotA2C(SB3Lab):
    """SB3 A2C swings the Acrobot up (zoo hyperparameters: 16 normalized envs)."""

    tags = ("rl", "sb3", "a2c")
    Config = AcrobotConfig


@dataclass
class MountainCarConfig(Config):
    algo: ClassVar[str] = "dqn"
    env_id: str = option("MountainCar-v0", "Gymnasium environment id")


class MountainCarDQN(SB3Lab):
    """SB3 DQN drives the car up the mountain (zoo hyperparameters, replay buffer)."""

    tags = ("rl", "sb3", "dqn")
    Config = MountainCarConfig


@dataclass
class PendulumConfig(Config):
    algo: ClassVar[str] = "sac"
    env_id: str = option("Pendulum-v1", "Gymnasium environment id")
    eval_every: int = option(2_000, "environment steps between evaluations (0: none)")
    checkpoint_every: int = option(5_000, "environment steps between latest checkpoints")


class PendulumSAC(SB3Lab):
    """SB3 SAC swings the pendulum up with a continuous torque (zoo: 20k steps, about -160)."""

    tags = ("rl", "sb3", "sac", "continuous")
    Config = PendulumConfig


@dataclass
class LunarLanderConfig(Config):
    algo: ClassVar[str] = "ppo"
    env_id: str = option("LunarLander-v3", "Gymnasium environment id (needs Box2D)")
    eval_every: int = option(50_000, "environment steps between evaluations (0: none)")


class LunarLanderPPO(SB3Lab):
    """SB3 PPO lands the lunar lander (needs the box2d extra; zoo: 242 ± 32 after 1M steps)."""

    tags = ("rl", "sb3", "ppo", "box2d")
    Config = LunarLanderConfig


@dataclass
class PongConfig(Config):
    algo: ClassVar[str] = "ppo"
    env_id: str = option("PongNoFrameskip-v4", "Atari environment id (needs the atari extra)")
    eval_every: int = option(250_000, "environment steps between evaluations (0: none)")
    checkpoint_every: int = option(250_000, "environment steps between latest checkpoints")


class PongPPO(SB3Lab):
    """SB3 PPO plays Atari Pong from pixels with a CNN (needs the atari extra; a GPU job)."""

    tags = ("rl", "sb3", "ppo", "atari", "cnn")
    explains = "none"  # 4 stacked 84x84 frames: not a tabular policy
    Config = PongConfig


@dataclass
class HalfCheetahConfig(Config):
    algo: ClassVar[str] = "sac"
    env_id: str = option("HalfCheetah-v5", "MuJoCo environment id (needs the mujoco extra)")
    eval_every: int = option(25_000, "environment steps between evaluations (0: none)")
    checkpoint_every: int = option(50_000, "environment steps between latest checkpoints")


class HalfCheetahSAC(SB3Lab):
    """SB3 SAC makes MuJoCo's half-cheetah run (needs the mujoco extra; a GPU job)."""

    tags = ("rl", "sb3", "sac", "mujoco", "continuous")
    Config = HalfCheetahConfig
