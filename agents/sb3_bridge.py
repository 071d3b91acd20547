"""The one bridge between Stable-Baselines3 and the framework, used by every SB3 lab.

SB3 trains with `model.learn`; the bridge sends what happens there to the run: SB3's own logger
writes to the run's tracker (its losses and rollout statistics, on the `env_step` axis, and no
`/tmp/SB3-<date>` folder), callbacks log every finished episode, evaluate the agent every
`eval_every` steps on a separate Monitor-wrapped env with its own seed (best checkpoint), write
the latest checkpoint (with the replay buffer of an off-policy agent) and drive the run's
progress bar. `--resume` reloads the latest checkpoint and carries `num_timesteps` on.

Hyperparameters come from `agents/hyperparams/<algo>.yml` (rl-baselines3-zoo's layout: a
`default:` section and one per env id), then from the lab's config (`--set`).
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from labs import ConfigError

EVAL_SEED_OFFSET = 10_000  # periodic evaluation: its own env, its own seed
FINAL_SEED_OFFSET = 20_000  # the final evaluation and `lab eval`: the same episodes each time
EXPLAIN_SEED_OFFSET = 30_000  # the rollouts whose states LIME explains

ALGOS = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN", "sac": "SAC"}
ACTION_SPACES = {"ppo": ("Discrete", "Box", "MultiDiscrete", "MultiBinary"),
                 "a2c": ("Discrete", "Box", "MultiDiscrete", "MultiBinary"),
                 "dqn": ("Discrete",), "sac": ("Box",)}
# the zoo's own keys; every other YAML key is an argument of the algorithm's constructor
ZOO_KEYS = ("n_timesteps", "n_envs", "policy", "normalize", "frame_stack")
SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")  # may be `lin_<x>`
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "elu": "ELU", "leaky_relu": "LeakyReLU"}
# env entry points (or ids) -> (module, extra): what a user installs to get them
EXTRAS = (("gymnasium.envs.box2d", "Box2D", "box2d"), ("gymnasium.envs.mujoco", "mujoco", "mujoco"),
          ("ale_py", "ale_py", "atari"))


class MissingExtra(ConfigError):
    """An environment needs an optional dependency that is not installed."""


# -- hyperparameters -------------------------------------------------------------------------


def zoo_yaml(algo: str) -> dict[str, dict[str, Any]]:
    import yaml

    text = resources.files("agents").joinpath("hyperparams", f"{algo}.yml").read_text()
    return yaml.safe_load(text)


def hyperparams(algo: str, env_id: str) -> dict[str, Any]:
    """The YAML's `default:` section updated by the env's own section."""
    doc = zoo_yaml(algo)
    return {**doc.get("default", {}), **doc.get(env_id, {})}


@dataclass
class Spec:
    """Everything that makes one SB3 agent: resolved hyperparameters, env, budget."""

    algo: str
    env_id: str
    n_timesteps: int
    n_envs: int
    policy: str
    normalize: dict[str, Any] | None
    frame_stack: int
    kwargs: dict[str, Any] = field(default_factory=dict)  # the algorithm's constructor args
    raw: dict[str, Any] = field(default_factory=dict)  # as written, for config.yaml / tables

    @property
    def atari(self) -> bool:
        return is_atari(self.env_id)

    @property
    def off_policy(self) -> bool:
        return self.algo in ("dqn", "sac")

    @property
    def algo_class(self) -> type:
        import stable_baselines3

        return getattr(stable_baselines3, ALGOS[self.algo])


def resolve(algo: str, cfg: Any) -> Spec:
    """The YAML's values for `cfg.env_id`, then the config's overrides, made ready for SB3."""
    raw = hyperparams(algo, cfg.env_id)
    raw.update(cfg.hyperparams or {})
    if cfg.learning_rate is not None:
        raw["learning_rate"] = cfg.learning_rate
    if cfg.policy_kwargs is not None:
        raw["policy_kwargs"] = cfg.policy_kwargs
    if cfg.n_timesteps:
        raw["n_timesteps"] = cfg.n_timesteps
    if cfg.n_envs:
        raw["n_envs"] = cfg.n_envs
    kwargs = {k: v for k, v in raw.items() if k not in ZOO_KEYS}
    for key in SCHEDULED:
        if key in kwargs:
            kwargs[key] = schedule(key, kwargs[key])
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = policy_kwargs(kwargs["policy_kwargs"])
    normalize = raw.get("normalize", False)
    if isinstance(normalize, str):  # the zoo sometimes writes "{'norm_reward': False}"
        import yaml

        normalize = yaml.safe_load(normalize.replace("'", '"').replace("False", "false")
                                   .replace("True", "true"))
    normalize = (dict(normalize) if isinstance(normalize, dict) else {}) if normalize else None
    return Spec(algo, cfg.env_id, int(float(raw.get("n_timesteps", 100_000))),
                int(raw.get("n_envs", 1)), str(raw.get("policy", "MlpPolicy")), normalize,
                int(raw.get("frame_stack", 0)), kwargs, raw)


def schedule(key: str, value: Any) -> Any:
    """`lin_<x>` (the zoo's linear schedule): x falling linearly to 0 over training."""
    if isinstance(value, str) and value.startswith("lin_"):
        from stable_baselines3.common.utils import LinearSchedule

        try:
            start = float(value[4:])
        except ValueError:
            raise ConfigError(f"bad value for '{key}': {value!r}; write a number or "
                              f"lin_<number> (e.g. lin_1e-3)") from None
        return LinearSchedule(start, 0.0, 1.0)  # start * progress_remaining
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"bad value for '{key}': {value!r}; write a number or "
                              f"lin_<number> (e.g. lin_1e-3)") from None
    return value


def policy_kwargs(value: Any) -> dict[str, Any]:
    """A YAML mapping for SB3's policy_kwargs; `activation_fn` by name (relu, tanh, ...)."""
    if not isinstance(value, dict):
        raise ConfigError(f"bad value for 'policy_kwargs': {value!r}; write a mapping, e.g. "
                          f"policy_kwargs={{net_arch: [64, 64]}}")
    out = dict(value)
    if isinstance(out.get("activation_fn"), str):
        from torch import nn

        name = out["activation_fn"].lower().removeprefix("nn.")
        if name not in ACTIVATIONS:
            raise ConfigError(f"bad value for 'policy_kwargs': activation_fn "
                              f"{out['activation_fn']!r}; choose one of {', '.join(ACTIVATIONS)}")
        out["activation_fn"] = getattr(nn, ACTIVATIONS[name])
    return out


# -- checks before anything is made (Config.validate) ----------------------------------------


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/") or "NoFrameskip" in env_id


def check(algo: str, cfg: Any) -> None:
    """Refuse, in one line, an env id that does not exist, an env whose optional dependency
    is missing, an algorithm that does not fit its action space, and hyperparameters the
    algorithm does not take -- all before a run directory or an agent is made."""
    import gymnasium as gym

    env_id = cfg.env_id
    if is_atari(env_id):
        require("ale_py", "atari", env_id)
        require("cv2", "atari", env_id)  # SB3's AtariWrapper resizes frames with OpenCV
        import ale_py

        gym.register_envs(ale_py)
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown environment id '{env_id}' (env_id).{hint} "
                          f"`python -c \"import gymnasium; gymnasium.pprint_registry()\"` "
                          f"lists them")
    entry = str(gym.spec(env_id).entry_point)
    for prefix, module, extra in EXTRAS:
        if entry.startswith(prefix):
            require(module, extra, env_id)
    space = action_space(env_id)
    if type(space).__name__ not in ACTION_SPACES[algo]:
        fits = [ALGOS[a] for a, kinds in ACTION_SPACES.items() if type(space).__name__ in kinds]
        raise ConfigError(f"{ALGOS[algo]} needs a {' or '.join(ACTION_SPACES[algo])} action "
                          f"space; {env_id} has {space} (use {', '.join(fits)} for it)")
    allowed = set(inspect.signature(getattr(__import__("stable_baselines3"),
                                            ALGOS[algo]).__init__).parameters)
    allowed -= {"self", "policy", "env", "seed", "device", "verbose", "tensorboard_log",
                "_init_setup_model"}
    given = set(hyperparams(algo, env_id)) | set(cfg.hyperparams or {})
    unknown = sorted(given - allowed - set(ZOO_KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        valid = ", ".join(sorted(allowed | set(ZOO_KEYS)))
        raise ConfigError(f"unknown hyperparameter '{unknown[0]}' for {ALGOS[algo]} "
                          f"(hyperparams).{hint} Valid: {valid}")
    resolve(algo, cfg)  # bad lin_ schedules, policy_kwargs


def require(module: str, extra: str, env_id: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtra(f"{env_id} needs the '{extra}' extra ({module} is not installed): "
                           f"pip install -e \".[{extra}]\"")


def action_space(env_id: str) -> Any:
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return env.action_space
    finally:
        env.close()


# -- environments ----------------------------------------------------------------------------


def make_env(spec: Spec, n_envs: int, seed: int, *, training: bool = True,
             norm: dict[str, np.ndarray] | None = None) -> Any:
    """`n_envs` Monitor-wrapped copies of the env, seeded `seed`, `seed + 1`, ...; Atari with
    SB3's AtariWrapper and stacked frames; VecNormalize when the hyperparameters say so
    (statistics `norm` restored; frozen, raw rewards when not `training`)."""
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize

    if spec.atari:
        import ale_py
        import gymnasium as gym

        gym.register_envs(ale_py)
        venv = make_atari_env(spec.env_id, n_envs=n_envs, seed=seed)
    else:
        venv = make_vec_env(spec.env_id, n_envs=n_envs, seed=seed)
    if spec.frame_stack:
        venv = VecFrameStack(venv, spec.frame_stack)
    if spec.normalize is not None:
        kw = dict(spec.normalize) if training else {**spec.normalize, "norm_reward": False}
        venv = VecNormalize(venv, training=training, **kw)
        if norm:
            set_norm(venv, norm)
    return venv


def get_norm(venv: Any) -> dict[str, np.ndarray] | None:
    """VecNormalize's running statistics as plain arrays (None without normalization)."""
    from stable_baselines3.common.vec_env import VecNormalize

    if not isinstance(venv, VecNormalize):
        return None
    return {"obs_mean": venv.obs_rms.mean, "obs_var": venv.obs_rms.var,
            "obs_count": np.asarray(venv.obs_rms.count), "ret_mean": venv.ret_rms.mean,
            "ret_var": venv.ret_rms.var, "ret_count": np.asarray(venv.ret_rms.count)}


def set_norm(venv: Any, norm: dict[str, np.ndarray]) -> None:
    for rms, prefix in ((venv.obs_rms, "obs"), (venv.ret_rms, "ret")):
        rms.mean = np.array(norm[f"{prefix}_mean"], dtype=np.float64)
        rms.var = np.array(norm[f"{prefix}_var"], dtype=np.float64)
        rms.count = float(norm[f"{prefix}_count"])


def normalizer(spec: Spec, norm: dict[str, np.ndarray] | None):
    """obs -> the policy's input (VecNormalize's clipped standardization, or as it is)."""
    if spec.normalize is None or norm is None:
        return lambda obs: obs
    clip = float(spec.normalize.get("clip_obs", 10.0))
    eps = float(spec.normalize.get("epsilon", 1e-8))
    mean, std = norm["obs_mean"], np.sqrt(norm["obs_var"] + eps)
    return lambda obs: np.clip((obs - mean) / std, -clip, clip).astype(np.float32)


# -- checkpoints -----------------------------------------------------------------------------


class Checkpoints:
    """`checkpoints/{best,latest}.zip` (SB3's format), `<tag>_vecnormalize.npz`,
    `latest_replay_buffer.pkl` and `<tag>.json` (num_timesteps, best return), each written
    to a temporary name and renamed: a kill mid-write leaves the previous one whole."""

    def __init__(self, folder: Path):
        self.dir = Path(folder)

    def path(self, tag: str) -> Path:
        return self.dir / f"{tag}.zip"

    def has(self, tag: str) -> bool:
        return self.path(tag).is_file() and (self.dir / f"{tag}.json").is_file()

    def save(self, tag: str, model: Any, state: dict[str, Any], *,
             norm: dict[str, np.ndarray] | None = None, buffer: bool = False) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if norm is not None:
            tmp = self.dir / f"{tag}_vecnormalize.tmp.npz"
            np.savez(tmp, **norm)
            os.replace(tmp, self.dir / f"{tag}_vecnormalize.npz")
        if buffer:
            tmp = self.dir / f"{tag}_replay_buffer.tmp.pkl"
            model.save_replay_buffer(tmp)
            os.replace(tmp, self.dir / f"{tag}_replay_buffer.pkl")
        tmp = self.dir / f"{tag}.tmp.zip"
        model.save(tmp)
        os.replace(tmp, self.path(tag))
        tmp = self.dir / f"{tag}.tmp.json"
        tmp.write_text(json.dumps({**state, "num_timesteps": int(model.num_timesteps)}))
        os.replace(tmp, self.dir / f"{tag}.json")  # last: it vouches for the files above

    def state(self, tag: str) -> dict[str, Any]:
        return json.loads((self.dir / f"{tag}.json").read_text())

    def norm(self, tag: str) -> dict[str, np.ndarray] | None:
        file = self.dir / f"{tag}_vecnormalize.npz"
        if not file.is_file():
            return None
        with np.load(file) as z:
            return {k: z[k] for k in z.files}

    def load(self, tag: str, spec: Spec, env: Any = None, device: Any = "cpu") -> Any:
        from labs import CheckpointError

        path = self.path(tag)
        if not path.is_file():
            raise CheckpointError(f"no agent checkpoint {path}")
        try:
            return spec.algo_class.load(path, env=env, device=device)
        except (ValueError, KeyError, OSError, RuntimeError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"cannot load {path}: {type(e).__name__}: {e}") from None


# -- callbacks and SB3's logger --------------------------------------------------------------


def tracker_logger(run: Any) -> Any:
    """An SB3 Logger whose only output is the run's tracker: no stdout table, no
    `/tmp/SB3-<date>` folder (SB3 makes one whenever it configures a logger itself)."""
    from stable_baselines3.common.logger import KVWriter, Logger

    class TrackerOutput(KVWriter):
        def write(self, key_values: dict[str, Any], key_excluded: dict, step: int = 0) -> None:
            scalars = {k: float(v) for k, v in key_values.items()
                       if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
            if scalars:
                run.log(scalars, step=int(step), axis="env_step")

        def close(self) -> None:
            pass

    return Logger(folder=None, output_formats=[TrackerOutput()])


def callbacks(run: Any, spec: Spec, cfg: Any, ckpt: Checkpoints, eval_env: Any,
              state: dict[str, Any]) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import sync_envs_normalization

    class Episodes(BaseCallback):
        """Each finished episode's return and length (Monitor's `info["episode"]`)."""

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                ep = info.get("episode")
                if ep is not None:
                    state["episodes"] = state.get("episodes", 0) + 1
                    state["recent"] = (state.get("recent", []) + [float(ep["r"])])[-100:]
                    run.log({"episode_return": float(ep["r"]), "episode_length": int(ep["l"])},
                            step=self.num_timesteps, axis="env_step")
            return True

    class Progress(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = run.bar(None, desc=f"{run.lab} env steps", total=spec.n_timesteps)
            self.bar.update(self.num_timesteps)
            self.shown = self.num_timesteps

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.shown)
            self.shown = self.num_timesteps
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    class Evaluate(BaseCallback):
        """Every `eval_every` env steps: `eval_episodes` deterministic episodes on the
        evaluation env; a new best mean return writes `best.zip`."""

        def _on_training_start(self) -> None:
            every = cfg.eval_every
            self.next = (self.num_timesteps // every + 1) * every if every else None

        def _on_step(self) -> bool:
            if self.next is not None and self.num_timesteps >= self.next:
                self.next = (self.num_timesteps // cfg.eval_every + 1) * cfg.eval_every
                evaluate_now(self.model)
            return True

    def evaluate_now(model: Any) -> None:
        sync_envs_normalization(model.get_env(), eval_env)
        returns, lengths = evaluate_policy(model, eval_env, n_eval_episodes=cfg.eval_episodes,
                                           deterministic=True, return_episode_rewards=True)
        mean = float(np.mean(returns))
        run.log({"eval/mean_return": mean, "eval/std_return": float(np.std(returns)),
                 "eval/mean_length": float(np.mean(lengths))},
                step=model.num_timesteps, axis="env_step")
        state["evaluations"] = state.get("evaluations", 0) + 1
        state["last_eval_step"] = int(model.num_timesteps)
        if mean > state.get("best_eval_return", -np.inf):
            state["best_eval_return"], state["best_step"] = mean, int(model.num_timesteps)
            ckpt.save("best", model, state, norm=get_norm(model.get_env()))

    class Latest(BaseCallback):
        def _on_training_start(self) -> None:
            self.next = (self.num_timesteps // cfg.checkpoint_every + 1) * cfg.checkpoint_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                self.next = (self.num_timesteps // cfg.checkpoint_every + 1) * cfg.checkpoint_every
                save_latest(self.model)
            return True

    def save_latest(model: Any) -> None:
        run.tracker.flush()  # the rows of every step the checkpoint holds are on disk first
        ckpt.save("latest", model, state, norm=get_norm(model.get_env()),
                  buffer=spec.off_policy)

    # SB3 callbacks among the run's callbacks (`labs.run(..., callbacks=[...])`) join in
    own = [c for c in getattr(run, "callbacks", ()) if isinstance(c, BaseCallback)]
    cbs = CallbackList([Episodes(), Progress(), Evaluate(), Latest(), *own])
    cbs.evaluate_now, cbs.save_latest = evaluate_now, save_latest
    return cbs


# -- training --------------------------------------------------------------------------------


def device(run_device: Any, spec: Spec, choice: str = "auto") -> Any:
    """The run's device, except that an MLP policy of an on-policy agent stays on the CPU when
    the user did not ask for a GPU: SB3 says those run faster there (tiny batches)."""
    if choice == "auto" and spec.policy == "MlpPolicy" and not spec.off_policy:
        return "cpu"
    return run_device


@dataclass
class Trained:
    model: Any  # the agent at the end of training
    norm: dict[str, np.ndarray] | None
    state: dict[str, Any]
    seconds: float
    resumed_from: int


def train(run: Any, spec: Spec, cfg: Any) -> Trained:
    """Train `spec`'s agent into `run`: fresh, or from the latest checkpoint on `--resume`."""
    ckpt = Checkpoints(run.checkpoints)
    dev = device(run.device, spec, cfg.device)
    resumed_from = 0
    state: dict[str, Any] = {}
    if run.resuming and ckpt.has("latest"):
        state = ckpt.state("latest")
        venv = make_env(spec, spec.n_envs, cfg.seed + state["num_timesteps"],
                        norm=ckpt.norm("latest"))
        model = ckpt.load("latest", spec, env=venv, device=dev)
        if spec.off_policy and (ckpt.dir / "latest_replay_buffer.pkl").is_file():
            model.load_replay_buffer(ckpt.dir / "latest_replay_buffer.pkl")
        resumed_from = int(model.num_timesteps)
        if ckpt.has("best"):  # a best written after the latest checkpoint still stands
            best = ckpt.state("best")
            if best.get("best_eval_return", -np.inf) > state.get("best_eval_return", -np.inf):
                state.update(best_eval_return=best["best_eval_return"],
                             best_step=best.get("best_step", best["num_timesteps"]))
        # rows logged after that checkpoint are logged again as those steps rerun
        run.tracker.forget_after(resumed_from, "env_step")
    else:
        if run.resuming:  # killed before its first checkpoint: start over, rows and all
            run.tracker.forget_after(0, "env_step")
        venv = make_env(spec, spec.n_envs, cfg.seed)
        model = spec.algo_class(spec.policy, venv, seed=cfg.seed, device=dev, verbose=0,
                                **spec.kwargs)
    model.set_logger(tracker_logger(run))
    eval_env = make_env(spec, 1, cfg.seed + EVAL_SEED_OFFSET, training=False)
    cbs = callbacks(run, spec, cfg, ckpt, eval_env, state)
    t0 = time.perf_counter()
    try:
        model.learn(max(0, spec.n_timesteps - model.num_timesteps), callback=cbs,
                    log_interval=log_interval(model, spec, cfg.log_every),
                    reset_num_timesteps=resumed_from == 0, progress_bar=False)
    except KeyboardInterrupt:
        cbs.save_latest(model)  # Ctrl-C: resume from here
        raise
    seconds = time.perf_counter() - t0
    if cfg.eval_every and state.get("last_eval_step") != model.num_timesteps:
        cbs.evaluate_now(model)  # the final agent is a candidate for best too
    cbs.save_latest(model)
    eval_env.close()
    return Trained(model, get_norm(venv), state, seconds, resumed_from)


def log_interval(model: Any, spec: Spec, every: int) -> int:
    """SB3 dumps its logger every `log_interval` rollouts (on-policy; A2C's default, 100, is
    8,000 steps apart on 16 envs) or episodes (off-policy): about every `every` env steps."""
    if spec.off_policy:
        return 1
    return max(1, round(every / (model.n_steps * model.n_envs)))


def evaluate(model: Any, spec: Spec, norm: dict[str, np.ndarray] | None, episodes: int,
             seed: int) -> dict[str, float]:
    """Mean and std of the deterministic policy's return over `episodes` seeded episodes."""
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_env(spec, 1, seed, training=False, norm=norm)
    try:
        returns, lengths = evaluate_policy(model, env, n_eval_episodes=episodes,
                                           deterministic=True, return_episode_rewards=True)
    finally:
        env.close()
    return {"eval_return": float(np.mean(returns)), "eval_return_std": float(np.std(returns)),
            "eval_length": float(np.mean(lengths))}


def deterministic_action(model: Any, spec: Spec, norm: dict[str, np.ndarray] | None):
    """raw observation -> the model's deterministic action (on the normalized observation, as
    the agent was trained): the GIF's and the explained rollouts' policy."""
    prep = normalizer(spec, norm)

    def act(obs: Any) -> Any:
        return model.predict(prep(np.asarray(obs, dtype=np.float32)), deterministic=True)[0]

    return act


# -- explanations ----------------------------------------------------------------------------


def policy_predict(model: Any, spec: Spec, norm: dict[str, np.ndarray] | None):
    """(predict, mode): raw observations (N, d) -> the action probabilities (PPO, A2C: the
    policy's distribution; DQN: a softmax over its Q-values), or SAC's deterministic action in
    the env's units (regression; the first action dimension)."""
    import torch

    prep = normalizer(spec, norm)
    policy = model.policy

    def tensor(x: np.ndarray) -> Any:
        return torch.as_tensor(prep(np.asarray(x, dtype=np.float32)), device=policy.device)

    if spec.algo == "sac":
        def predict(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                a = policy.actor(tensor(x), deterministic=True).cpu().numpy()
            return policy.unscale_action(a)[:, 0]

        return predict, "regression"
    if spec.algo == "dqn":
        def predict(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return torch.softmax(policy.q_net(tensor(x)), -1).cpu().numpy()

        return predict, "classification"

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy.get_distribution(tensor(x)).distribution.probs.cpu().numpy()

    return predict, "classification"


def rollout_states(model: Any, spec: Spec, norm: dict[str, np.ndarray] | None, steps: int,
                   seed: int) -> np.ndarray:
    """Raw observations the trained agent visits (deterministic policy, seeded episodes),
    shuffled: the states whose actions LIME explains."""
    import gymnasium as gym

    act = deterministic_action(model, spec, norm)
    env = gym.make(spec.env_id)
    obs, _ = env.reset(seed=seed)
    states = []
    for _ in range(steps):
        states.append(np.asarray(obs, dtype=np.float32))
        obs, _, terminated, truncated, _ = env.step(act(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(states)[np.random.default_rng(seed).permutation(len(states))]


def policy_subject(predict, states, feature_names, action_names=None,
                   mode: str = "classification") -> Any:
    """The SB3 labs' LIME subject: the project's one policy subject (`agents.policy`), so an
    SB3 policy is explained like our own agents, KernelSHAP beside LIME included."""
    from agents.policy import policy_subject as subject

    return subject(predict, states, feature_names, action_names, mode)
