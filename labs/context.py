"""The run context a lab receives: its directory, device, tracker, figures and `fit()`."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labs import checkpoint
from labs.callbacks import Checkpoint, EarlyStopping, ProgressBar, TrackMetrics, progress_enabled
from labs.data import Dataset, TensorLoader
from labs.trainer import Callback, History, StepFn, Trainer, supervised_step


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

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    # -- logging -----------------------------------------------------------------------------

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Record scalars (to metrics.jsonl and W&B)."""
        self.tracker.log(metrics, step)

    def figure(self, name: str, fig: Any) -> Path:
        """Save a matplotlib figure as `figures/<name>.png` (dpi 100) and log it."""
        path = self.dir / "figures" / f"{name}.png"
        _close(fig)  # out of pyplot's registry (if it was there): rendering needs no GUI
        save_png(fig, path)
        self.figures[name] = path
        self.tracker.log_figure(f"figures/{name}", path)
        return path

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.tracker.log_table(name, columns, rows)

    def bar(self, iterable: Iterable, desc: str = "", total: int | None = None) -> Iterable:
        """A progress bar for loops a lab runs itself (quiet when not on a terminal)."""
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc or self.lab, total=total,
                    disable=not progress_enabled(self.progress), leave=False)

    # -- training ----------------------------------------------------------------------------

    def fit(self, model: nn.Module, data: Dataset, *, loss: Any = None,
            optimizer: Any = None, scheduler: Any = None, metrics: Sequence[str] = ("acc",),
            epochs: int | None = None, batch_size: int | None = None, name: str = "",
            callbacks: Sequence[Callback] = (), step: StepFn = supervised_step,
            monitor: str | None = None, train: Iterable | None = None) -> FitResult:
        """Train `model` on `data` with the shared trainer and evaluate it on the test split.

        Everything the config says (epochs, batch size, LR schedule, gradient clipping, early
        stopping, mixed precision, compile) is applied here; checkpoints go to
        `checkpoints/[<name>/]last.pt` every epoch, and a resumed run continues from there.
        `name` tells several fits of one lab apart (metrics are prefixed `<name>/`).
        `train` replaces the in-memory batching with any iterable of (x, y) batches.
        """
        cfg = self.cfg
        epochs = epochs if epochs is not None else getattr(cfg, "epochs", 1)
        batch_size = batch_size or getattr(cfg, "batch_size", 64)
        if optimizer is None:
            optimizer = torch.optim.Adam(model.parameters(), lr=getattr(cfg, "lr", 1e-3))
        if scheduler is None:
            scheduler = make_scheduler(optimizer, getattr(cfg, "lr_schedule", "none"), epochs)
        net = model.to(self.device)
        if getattr(cfg, "compile", False):
            net = torch.compile(net)
        monitor = monitor or ("val_loss" if data.val is not None else "train_loss")
        ckdir = self.checkpoints / name if name else self.checkpoints
        cbs: list[Callback] = [TrackMetrics(self.tracker, f"{name}/" if name else ""),
                               Checkpoint(ckdir, monitor=monitor)]
        if getattr(cfg, "early_stop", 0) > 0:
            cbs.append(EarlyStopping(cfg.early_stop, monitor=monitor))
        cbs.append(ProgressBar(f"{self.lab} {name}".strip(), enabled=self.progress))
        cbs += list(callbacks) + self.callbacks
        trainer = Trainer(net, optimizer, loss, epochs=epochs, device=self.device,
                          scheduler=scheduler, grad_clip=getattr(cfg, "grad_clip", 0.0),
                          amp=getattr(cfg, "amp", False), metrics=metrics, callbacks=cbs,
                          step=step)
        if self.resuming and (ckdir / "last.pt").is_file():
            trainer.load_state_dict(checkpoint.load(ckdir / "last.pt", self.device))
            self.tracker.forget_after(trainer.epoch, f"{name}/train_loss" if name else
                                      "train_loss")
        loader = train if train is not None else TensorLoader(
            data.train, batch_size, device=self.device, seed=getattr(cfg, "seed", 0))
        history = trainer.fit(loader, val=data.val)
        test = trainer.evaluate(data.test)
        self.data = data
        self.save_model(model, name)
        return FitResult(model, history, test, trainer)

    def save_model(self, model: nn.Module, name: str = "") -> Path:
        """Keep the final weights (`checkpoints/[<name>/]model.pt`) for `lab explain`."""
        self.models[name] = model
        ckdir = self.checkpoints / name if name else self.checkpoints
        return checkpoint.save({"model": model.state_dict()}, ckdir / "model.pt")


def make_scheduler(optimizer: Any, kind: str, epochs: int) -> Any:
    """The LR schedule named in the config, stepped once per epoch.

    Several optimizers (a dict, e.g. a GAN's) bring their own schedulers: pass `scheduler=`.
    """
    if isinstance(optimizer, dict):
        if kind != "none":
            from labs.errors import ConfigError

            raise ConfigError(f"lr_schedule={kind} needs one optimizer; this lab has "
                              f"{len(optimizer)}: leave lr_schedule=none")
        return None
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    return None


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
