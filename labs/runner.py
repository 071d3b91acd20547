"""Everything that happens around a lab's `run()`: config, seeding, device, run directory,
tracking, explanations after training, summary and status. The CLI and the notebook API
(`labs.run`) both go through `execute`."""

from __future__ import annotations

import datetime as dt
import platform
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from labs import config as config_mod
from labs import rundir
from labs.errors import LabError, OutOfMemory, RunNotFound
from labs.registry import BUILTIN_DIST, discover

# what may differ in a resumed run without changing its numbers
RESUME_KEYS = {"device", "explain", "explain_samples", "explain_num_samples", "checkpoint_every"}


@dataclass
class Result:
    """What a finished run gives back: metrics, trained model(s), directory."""

    lab: str
    run_id: str
    dir: Path
    metrics: dict[str, Any]
    config: Any
    models: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> Any:
        """The trained model (the first one, for labs that train several)."""
        return next(iter(self.models.values()), None)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in self.metrics.items())
        return f"Result({self.lab} {self.run_id}: {shown}; dir={self.dir})"


def load_lab(name: str) -> type:
    """Import the lab registered as `name`."""
    return discover().get(name).load()


def resolve_config(lab_cls: type, overrides: dict[str, Any] | None = None,
                   config_file: str | Path | None = None,
                   sources: dict[str, str] | None = None) -> Any:
    """Defaults, then the config file, then overrides: one pass converts and checks them all,
    each error naming where its value came from (`sources`: key -> origin, else `--set`)."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if config_file:
        values.update(config_mod.load_file(config_file))
        origin.update(dict.fromkeys(values, str(config_file)))
    values.update(overrides or {})
    origin.update({k: (sources or {}).get(k, "--set") for k in overrides or {}})
    return config_mod.build(lab_cls.Config, values, sources=origin)


def _preflight(cfg: Any) -> None:
    check = getattr(cfg, "preflight", None)  # a plain-dataclass Config may lack it
    if callable(check):
        check()


def execute(name: str, overrides: dict[str, Any] | None = None, *,
            config_file: str | Path | None = None, resume: str | None = None,
            wandb_mode: str = "offline", wandb_project: str = "labs",
            wandb_entity: str | None = None, runs_dir: str | Path | None = None,
            callbacks: Sequence[Any] = (), progress: bool | None = None,
            command: str = "", echo: bool = False,
            sources: dict[str, str] | None = None, parent: Any = None) -> Result:
    """Run lab `name` from start to summary, or resume the run `resume`.

    Every config value is checked before a run directory is made; `sources` names where an
    override came from (`{"seed": "--seed"}`; default `--set`) for the error messages.
    `parent`: the run (a `Run` or `Result`) this one is part of, recorded in config.yaml."""
    lab_cls = load_lab(name)
    parent_ref = _parent_ref(parent) if parent is not None else None
    from labs import checkpoint, distributed
    from labs import device as device_mod
    from labs import threads as threads_mod
    from labs.context import Run
    from labs.tracker import Tracker
    from labs.trainer import seed_everything

    distributed.init_from_env()  # joins torchrun's process group; no-op in one process
    if resume:
        path = rundir.find(resume, name, runs_dir)
        def resumed() -> tuple[dict, Any, Any]:
            saved = _resumable(path, name, resume, overrides)
            values = {**saved.get("config", {}), **(overrides or {})}
            origin = {k: (sources or {}).get(k, "--set") for k in overrides or {}}
            cfg = config_mod.build(lab_cls.Config, values, source=str(path), sources=origin)
            _preflight(cfg)
            return saved, cfg, device_mod.choose(cfg.device)

        resumed()  # refuse a bad resume before touching the run, even its .lock
        lock = _own(path)  # one owner, before the run is written
        try:
            saved, cfg, dev = resumed()  # again, as its owner: it may have changed meanwhile
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        run_id, meta = path.name, saved
    else:
        cfg = resolve_config(lab_cls, overrides, config_file, sources)
        _preflight(cfg)  # what training needs (weights, a source run): before a directory
        dev = device_mod.choose(cfg.device)  # a bad device fails before a directory is made
        threads_mod.resolve(cfg.threads)  # and so does a bad thread count
        run_id, path = distributed.on_main(rundir.create, name, runs_dir)  # rank 0 makes it
        lock = _own(path)
        meta = {"lab": name, "run_id": run_id,
                "created": dt.datetime.now().isoformat(timespec="seconds"), "command": command}
    dev = distributed.device(dev)  # one GPU per process (LOCAL_RANK)
    distributed.barrier()  # every rank has read a resumed run before rank 0 rewrites it
    threads = threads_mod.apply(cfg.threads)  # every rank: the count changes float sums
    if not distributed.is_main():  # ranks > 0 train along in a scratch directory
        return distributed.follow(lab_cls, name, run_id, path, cfg, dev, resume=bool(resume),
                                  callbacks=callbacks)
    meta.update(config=config_mod.to_dict(cfg), seed=cfg.seed, device=str(dev),
                threads=threads, versions=versions(lab_cls.source))
    meta["world_size"] = distributed.world_size()
    rundir.write_yaml(path / "config.yaml", meta)
    rundir.write_summary(path, "running", {}, "")

    seed_everything(cfg.seed)
    tracker = Tracker(path, wandb_mode=wandb_mode, project=wandb_project, entity=wandb_entity,
                      name=f"{name}/{run_id}", run_id=_wandb_id(run_id),
                      config={"lab": name, **config_mod.to_dict(cfg)}, tags=lab_cls.tags,
                      resume=bool(resume))
    run = Run(name, run_id, path, cfg, dev, tracker, resuming=bool(resume),
              callbacks=callbacks, progress=progress)
    if parent_ref is not None:  # where a trial came from: `recorded: parent:` in config.yaml
        run.record({"parent": parent_ref})
    lab = lab_cls()
    if echo:
        print(f"{name}: run {run_id} in {path} on {dev}", file=sys.stderr)
    try:
        metrics = dict(lab.run(cfg, run) or {})
        checkpoint.wait_pending()  # the fits' last checkpoints, written in the background
        lab.save(path, run.models)  # what `lab explain` and `lab eval` reload (Lab.load)
        from labs import summary  # summary.txt: each trained model's layers and parameters

        summary.write(path / "summary.txt", run.models, run.data, lab=name)
        if getattr(cfg, "explain", False) and lab_cls.explains != "none" and run.models:
            from labs.explaining import explain_run
            from labs.reload import leave_out_own_data

            models = dict(run.models)
            try:  # a variant trained on inputs of its own is not explained on the common ones
                leave_out_own_data(lab, models, run.recorded, "subjects", "run's explanations",
                                   "explain", run_id)
            except LabError as e:
                warnings.warn(str(e), stacklevel=1)
                models = {}
            if models:
                metrics.update(explain_run(lab, cfg, run, models, run.data,
                                           n=cfg.explain_samples,
                                           num_samples=cfg.explain_num_samples))
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        try:  # what was queued still lands: a resume starts from it
            checkpoint.wait_pending()
        except Exception:
            pass
        rundir.write_summary(path, status, {}, "", error=f"{type(e).__name__}: {e}")
        if isinstance(e, KeyboardInterrupt):
            e.resume_command = f"lab run {name} --resume {run_id}"  # for the CLI's message
        tracker.finish(exit_code=1)
        oom = out_of_memory(e, dev)
        if oom:
            raise OutOfMemory(f"{oom} (run {run_id} marked failed)") from None
        raise
    else:
        headline = lab_cls.headline or next(iter(metrics), "")
        rundir.write_summary(path, "completed", metrics, headline)
        tracker.summary(metrics)
        tracker.finish()
    finally:
        if lock is not None:
            lock.release()
    return Result(name, run_id, path, metrics, cfg, dict(run.models))


def out_of_memory(e: BaseException, device: Any = "cpu") -> str:
    """One line for torch's out-of-memory error, with the size it asked for; "" otherwise."""
    text = str(e)
    if not isinstance(e, RuntimeError) or not ("out of memory" in text.lower()
                                                or "can't allocate memory" in text):
        return ""
    size = ""
    if m := re.search(r"allocate (\d+) bytes", text):  # CPU: "... allocate 256000000 bytes"
        size = f" {_gib(int(m.group(1)))}"
    elif m := re.search(r"[Tt]ried to allocate ([\d.]+ (?:[KMGT]i?B|bytes))", text):  # CUDA
        size = f" {m.group(1)}"
    return (f"out of memory on {device}: the lab asked for{size or ' more than is free'}; "
            f"make the model or the batch smaller")


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB ({n:,} bytes)" if n >= 2**30 else f"{n:,} bytes"


def _own(path: Path) -> rundir.RunLock | None:
    """The run's lock, held by the one process that writes the run (rank 0 under torchrun)."""
    from labs import distributed

    return rundir.RunLock(path).acquire() if distributed.is_main() else None


def _resumable(path: Path, name: str, resume: str, overrides: dict[str, Any] | None) -> dict:
    """The saved config.yaml of a run that `--resume` may continue."""
    saved = rundir.read_yaml(path / "config.yaml")
    if not isinstance(saved.get("config"), dict):
        raise LabError(f"cannot resume {path}: its config.yaml holds no config (corrupt)")
    if saved.get("lab") != name:
        raise RunNotFound(f"run {resume} belongs to lab '{saved.get('lab')}', not '{name}'")
    if _status(path) == "completed":
        raise LabError(f"run {path} already completed; nothing to resume")
    changed = sorted(set(overrides or {}) - RESUME_KEYS)
    if changed:
        raise LabError(f"--resume continues a run with its saved config; {', '.join(changed)} "
                       f"cannot change (only {', '.join(sorted(RESUME_KEYS))} can)")
    return saved


def _parent_ref(parent: Any) -> dict[str, str]:
    """{"lab", "run_id"} of a parent run given as a `Run` (a lab's `run` argument) or a
    `Result`."""
    run_id = getattr(parent, "run_id", None) or getattr(parent, "id", None)
    lab = getattr(parent, "lab", None)
    if not (isinstance(lab, str) and isinstance(run_id, str)):
        raise TypeError(f"parent= takes the parent's Run or Result, not a "
                        f"{type(parent).__name__}")
    return {"lab": lab, "run_id": run_id}


def _wandb_id(run_id: str) -> str:
    return run_id.replace("-", "")  # W&B ids are [a-z0-9]


def _status(path: Path) -> str:
    try:
        return rundir.read_summary(path).get("status", "?")
    except (OSError, ValueError):
        return "?"


def versions(lab_dist: str = "") -> dict[str, str]:
    """Versions that decide a run's numbers."""
    out = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "scikit-learn", "lime", "wandb", BUILTIN_DIST, lab_dist):
        if dist and dist not in out:
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
    return out


def run(name: str, *, config: str | Path | None = None, resume: str | None = None,
        track: str | bool = "offline", wandb_project: str = "labs",
        wandb_entity: str | None = None, runs_dir: str | Path | None = None,
        callbacks: Sequence[Any] = (), progress: bool | None = None, parent: Any = None,
        **overrides: Any) -> Result:
    """Run a lab from Python (a notebook, a script) and get its metrics, model and directory.

    >>> result = run("digits-mlp", epochs=5, hidden=[128])
    >>> result.metrics["test_acc"], result.model, result.dir

    Keyword arguments are config overrides, checked like `--set`. `track` is a W&B mode
    ("offline", "online", "disabled") or False. A lab that runs other labs (a search's
    trials) passes its `run` as `parent`: each child's config.yaml records it under
    `recorded: parent:` (lab and run id), and `lab runs` shows it.
    """
    mode = "disabled" if track is False else ("offline" if track is True else str(track))
    if mode not in ("offline", "online", "disabled"):
        raise LabError(f"track must be offline, online or disabled, not {track!r}")
    return execute(name, overrides, config_file=config, resume=resume, wandb_mode=mode,
                   wandb_project=wandb_project, wandb_entity=wandb_entity, runs_dir=runs_dir,
                   callbacks=callbacks, progress=progress, parent=parent,
                   sources=dict.fromkeys(overrides, "keyword argument"))
