"""The trainer's standard callbacks: tracking, checkpoints, early stopping, progress."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from labs import checkpoint
from labs.trainer import Callback, Trainer


class TrackMetrics(Callback):
    """Send each epoch's logs to the tracker, with the epoch as the step."""

    def __init__(self, tracker: Any, prefix: str = ""):
        self.tracker = tracker
        self.prefix = prefix

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        self.tracker.log({f"{self.prefix}{k}": v for k, v in logs.items()} | {"epoch": epoch},
                         step=epoch)


class Checkpoint(Callback):
    """Write `last.pt` every epoch and `best.pt` when the monitored metric improves.

    Both are written atomically, so a run killed at any moment leaves a loadable `last.pt`.
    """

    def __init__(self, directory: Path, monitor: str = "val_loss", mode: str = "min"):
        self.dir = Path(directory)
        self.monitor = monitor
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = logs.get(self.monitor)
        improved = value is not None and _better(value, self.best, self.mode)
        if improved:
            self.best = value
        state = trainer.state_dict()  # includes this callback's updated `best`
        checkpoint.save(state, self.dir / "last.pt")
        if improved:
            checkpoint.save({"model": state["model"], "epoch": epoch, self.monitor: value},
                            self.dir / "best.pt")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    def __init__(self, patience: int, monitor: str = "val_loss", mode: str = "min",
                 min_delta: float = 0.0):
        self.patience = patience
        self.monitor = monitor
        self.mode = mode
        self.min_delta = min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch = 0

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = logs.get(self.monitor)
        if value is None:
            return
        delta = -self.min_delta if self.mode == "min" else self.min_delta
        if _better(value, self.best + delta, self.mode):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.should_stop = True
                self.stopped_epoch = epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]


class ProgressBar(Callback):
    """One bar per fit, epochs as ticks, latest metrics as its postfix.

    Quiet when stderr is not a terminal (CI logs) unless in Jupyter, where tqdm draws a widget.
    """

    def __init__(self, desc: str = "", enabled: bool | None = None):
        self.desc = desc
        self.enabled = progress_enabled(enabled)
        self.bar = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=trainer.epochs, initial=trainer.epoch, desc=self.desc,
                            unit="epoch", leave=True, dynamic_ncols=True)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.bar is not None:
            shown = {k: f"{v:.4g}" for k, v in logs.items() if k != "epoch_time"}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress_enabled(flag: bool | None = None) -> bool:
    """`flag`, or by default: on a terminal, or in Jupyter (where tqdm draws a widget)."""
    if flag is not None:
        return flag
    return sys.stderr.isatty() or _in_jupyter()


def _in_jupyter() -> bool:
    """A Jupyter kernel's shell, not merely an imported ipykernel (tests import it too)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _better(value: float, best: float, mode: str) -> bool:
    return value < best if mode == "min" else value > best
