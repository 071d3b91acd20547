"""The run context a lab receives: its directory, device, tracker, figures and `fit()`."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labs import checkpoint, distributed
from labs.callbacks import Checkpoint, EarlyStopping, ProgressBar, TrackMetrics, progress_enabled
from labs.data import Dataset, for_eval, make_loader
from labs.trainer import Callback, History, StepFn, Trainer, supervised_eval_step, supervised_step


@dataclass
class FitResult:
    """What `Run.fit` returns: the trained model, its per-epoch history and test metrics."""

    model: nn.Module
    history: History
    test: dict[str, float]
    trainer: Trainer


class Run:
    """One execution of a lab: `runs/<lab>/<id>/`, the device, the tracker and the trainer."""

    def __init__(self, lab: str, run_id: str, path: Path, cfg: Any, device: torch.device,
                 tracker: Any, *, resuming: bool = False, callbacks: Sequence[Callback] = (),
                 progress: bool | None = None):
        self.lab = lab
        self.id = run_id
        self.dir = Path(path)
        self.cfg = cfg
        self.device = device
        self.tracker = tracker
        self.resuming = resuming
        self.callbacks = list(callbacks)
        self.progress = progress
        self.models: dict[str, nn.Module] = {}  # what `lab explain` reloads, by name
        self.data: Dataset | None = None
        self.figures: dict[str, Path] = {}
        self.recorded: dict[str, Any] = {}  # what `record` kept, merged over all its calls

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    # -- logging -----------------------------------------------------------------------------

    def log(self, metrics: dict[str, Any], step: int | None = None, *,
            axis: str = "step") -> None:
        """Record scalars (to metrics.jsonl and W&B) at `step` on the named `axis`.

        >>> run.log({"AND/mistakes": 2}, step=epoch, axis="AND/epoch")
        """
        self.tracker.log(metrics, step, axis=axis)

    def figure(self, name: str, fig: Any, step: int | None = None, *,
               axis: str = "epoch") -> Path:
        """Save a matplotlib figure as `figures/<name>.png` (dpi 100) and log it; with `step`
        it is logged at that step of `axis` (W&B shows one image per step under one key)."""
        path = self.dir / "figures" / f"{name}.png"
        _close(fig)  # out of pyplot's registry (if it was there): rendering needs no GUI
        save_png(fig, path)
        self.figures[name] = path
        if step is None:  # the two-argument call every tracker (a test's fake too) knows
            self.tracker.log_figure(f"figures/{name}", path)
        else:
            self.tracker.log_figure(f"figures/{name}", path, step, axis=axis)
        return path

    def video(self, name: str, path: Path, fps: int = 25) -> Path:
        """Log an animation the lab wrote into its run directory (e.g. `figures/<name>.gif`,
        an episode rendered frame by frame) as W&B media; the file stays where it is."""
        self.figures[name] = Path(path)
        self.tracker.log_video(f"figures/{name}", Path(path), fps)
        return Path(path)

    def record(self, values: dict[str, Any]) -> None:
        """Keep facts the lab decided while running (the layers it froze, each parameter
        group's learning rate) with the run's config: under `recorded:` in config.yaml and in
        the W&B run's config. Several calls merge, dicts key by key at every depth (two
        `variants.fit_all` calls add to one record); other values are replaced. The config
        proper is never changed.

        >>> run.record({"fine-tune": {"frozen_layers": ["block1"], "lr": {"head": 1e-3}}})
        """
        from labs import rundir

        values = {k: rundir.jsonable(v) for k, v in values.items()}
        self.recorded = merged = deep_merge(self.recorded, values)
        path = self.dir / "config.yaml"
        if path.is_file():  # a resumed run's file holds what the first process recorded too
            meta = rundir.read_yaml(path)
            meta["recorded"] = merged = deep_merge(meta.get("recorded") or {}, values)
            rundir.write_yaml(path, meta)
        # W&B's config update replaces a key's whole value: send the merged one
        self.tracker.config({k: merged[k] for k in values})

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.tracker.log_table(name, columns, rows)

    def bar(self, iterable: Iterable, desc: str = "", total: int | None = None) -> Iterable:
        """A progress bar for loops a lab runs itself (quiet when not on a terminal)."""
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc or self.lab, total=total,
                    disable=not progress_enabled(self.progress), leave=False)

    # -- training ----------------------------------------------------------------------------

    def fit(self, model: nn.Module, data: Dataset, *, loss: Any = None,
            optimizer: Any = None, scheduler: Any = None, scheduler_interval: str = "epoch",
            metrics: Sequence[str] = ("acc",), epochs: int | None = None,
            batch_size: int | None = None, name: str = "", callbacks: Sequence[Callback] = (),
            step: StepFn = supervised_step, eval_step: StepFn = supervised_eval_step,
            monitor: str | None = None, mode: str | None = None,
            checkpoint_every: str | int | None = None,
            train: Iterable | None = None) -> FitResult:
        """Train `model` on `data` with the shared trainer and evaluate it on the test split.

        >>> fit = run.fit(model, data, loss=nn.CrossEntropyLoss())
        >>> fit.test["acc"], fit.history.series("val_loss")

        Everything the config says (epochs, batch size, LR schedule, gradient clipping, early
        stopping and whether it restores the best epoch's weights, mixed precision, compile)
        is applied here. `checkpoints/[<name>/]last.pt`
        is written every `checkpoint_every` ("30s" by default, or "5 epochs", "500 steps"),
        at the end and on interrupt; a resumed run continues from there. `best.pt` holds the
        best weights by `monitor` (`val_loss`, or `train_loss` without a validation split;
        `mode` is inferred from the name unless given; `"none"`: no best.pt, e.g. a GAN whose
        losses say nothing about quality). `name` tells several fits of one lab
        apart (metrics are prefixed `<name>/`, their axis is `<name>/epoch`). `train` replaces
        the in-memory batching with any iterable of batches; `step` / `eval_step` replace the
        training / evaluation step; a `scheduler` you pass steps per `scheduler_interval`
        ("epoch" or "step").
        """
        cfg = self.cfg
        epochs = epochs if epochs is not None else getattr(cfg, "epochs", 1)
        batch_size = batch_size or getattr(cfg, "batch_size", 64)
        loader = train if train is not None else make_loader(
            data.train, batch_size, device=self.device, seed=getattr(cfg, "seed", 0))
        loader = distributed.shard(loader, seed=getattr(cfg, "seed", 0))  # this rank's part
        if optimizer is None:
            optimizer = torch.optim.Adam(model.parameters(), lr=getattr(cfg, "lr", 1e-3))
        schedule = getattr(cfg, "lr_schedule", "none")
        if scheduler is not None and schedule != "none":
            import warnings

            warnings.warn(f"lr_schedule={schedule} is ignored: this lab brings its own "
                          f"scheduler", RuntimeWarning, stacklevel=2)
        if scheduler is None:
            scheduler, scheduler_interval = make_scheduler(
                optimizer, getattr(cfg, "lr_schedule", "none"), epochs,
                len(loader) if hasattr(loader, "__len__") else None)
        net = model.to(self.device)
        net = distributed.wrap_model(net, self.device, optimizer,  # DDP under torchrun
                                     custom_step=step is not supervised_step)
        if getattr(cfg, "compile", False):
            net = torch.compile(net)
        monitor = monitor or ("val_loss" if data.val is not None else "train_loss")
        every = checkpoint_every or getattr(cfg, "checkpoint_every", "30s")
        ckdir = self.checkpoints / name if name else self.checkpoints
        # Checkpoint early: its between-epoch snapshot precedes other callbacks' epoch starts
        cbs: list[Callback] = [TrackMetrics(self.tracker, f"{name}/" if name else ""),
                               Checkpoint(ckdir, monitor=monitor, mode=mode, every=every,
                                          before_write=getattr(self.tracker, "flush", None))]
        if getattr(cfg, "early_stop", 0) > 0:
            if monitor == "none":
                from labs.errors import ConfigError

                raise ConfigError(f"early_stop={cfg.early_stop} needs a metric to watch; "
                                  f"this lab monitors none: leave early_stop=0")
            cbs.append(EarlyStopping(cfg.early_stop, monitor=monitor, mode=mode,
                                     restore_best=getattr(cfg, "restore_best", True)))
        cbs.append(ProgressBar(f"{self.lab} {name}".strip(), enabled=self.progress))
        cbs += list(callbacks) + self.callbacks
        trainer = Trainer(net, optimizer, loss, epochs=epochs, device=self.device,
                          scheduler=scheduler, scheduler_interval=scheduler_interval,
                          grad_clip=getattr(cfg, "grad_clip", 0.0),
                          amp=getattr(cfg, "amp", False), metrics=metrics, callbacks=cbs,
                          step=step, eval_step=eval_step,
                          channels_last=getattr(cfg, "channels_last", False))
        if self.resuming:
            last = ckdir / "last.pt"
            if last.is_file():
                state = checkpoint.load(last, self.device, require=("model", "epoch"))
                trainer.load_state_dict(state, path=last)
            # rows logged after the checkpoint (or before any, when the run was killed before
            # its first write) are logged again as the epochs rerun: drop them
            # (keyed on `epoch_time`: every epoch row has it, whatever its step returns)
            self.tracker.forget_after(trainer.epoch, f"{name}/epoch_time" if name else
                                      "epoch_time")
        val = None if data.val is None else for_eval(data.val, batch_size, device=self.device)
        history = trainer.fit(loader, val=val)
        test = trainer.evaluate(for_eval(data.test, batch_size, device=self.device))
        self.data = data
        self.save_model(model, name)
        return FitResult(model, history, test, trainer)

    def save_model(self, model: Any, name: str = "") -> None:
        """Keep a trained model (or anything the lab's `save` knows how to write) under `name`:
        after `run()`, the framework saves every kept model with `Lab.save` (by default
        `checkpoints/[<name>/]model.pt`) for `lab explain` and `lab eval`."""
        self.models[name] = model


def deep_merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`old` updated with `new`, dicts merged key by key at every depth (neither is changed)."""
    out = dict(old)
    for k, v in new.items():
        out[k] = (deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict)
                  else v)
    return out


def make_scheduler(optimizer: Any, kind: str, epochs: int,
                   steps_per_epoch: int | None = None) -> tuple[Any, str]:
    """The LR schedule named in the config and how often it steps: (scheduler, interval).

    `cosine` and `step` step once per epoch; `onecycle` (warm-up, then annealing; peak at
    the configured lr) once per batch, so it needs the number of batches per epoch.
    Several optimizers (a dict, e.g. a GAN's) bring their own schedulers: pass `scheduler=`.

    >>> scheduler, interval = make_scheduler(opt, "onecycle", epochs=10, steps_per_epoch=23)
    """
    from labs.errors import ConfigError

    if kind == "none":
        return None, "epoch"
    if isinstance(optimizer, dict):
        raise ConfigError(f"lr_schedule={kind} needs one optimizer; this lab has "
                          f"{len(optimizer)}: leave lr_schedule=none")
    sched = torch.optim.lr_scheduler
    if kind == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, epochs)), "epoch"
    if kind == "step":
        return sched.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1), "epoch"
    if kind == "onecycle":
        if not steps_per_epoch:
            raise ConfigError("lr_schedule=onecycle needs to know the batches per epoch: "
                              "this lab's training batches have no len()")
        return sched.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                total_steps=max(1, epochs * steps_per_epoch)), "step"
    raise ConfigError(f"unknown lr_schedule '{kind}'; choose none, cosine, step or onecycle")


FIGURE_DPI = 100


def save_png(fig: Any, path: Path, dpi: int = FIGURE_DPI) -> None:
    """Render with the Agg canvas directly: no pyplot state, no backend switch per save.

    Figures laid out already (tight_layout, layout="constrained") are drawn once; only a
    figure with no layout at all gets `bbox_inches="tight"`, whose cropping costs one more draw.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    if fig.get_layout_engine() is None:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    else:
        fig.set_dpi(dpi)
        fig.canvas.print_png(path)


def _close(fig: Any) -> None:
    """Drop a pyplot-made figure from pyplot's registry (pyplot is not imported for this)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)
