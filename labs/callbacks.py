"""The trainer's standard callbacks: tracking, checkpoints, early stopping, progress."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from labs import checkpoint
from labs.config import parse_interval  # noqa: F401  (re-exported: callbacks use it)
from labs.trainer import Callback, Trainer

# metric names that get better as they grow; everything else (losses, errors) minimises
_MAXIMISE = ("acc", "auc", "f1", "return", "reward", "precision", "recall", "r2")


def infer_mode(monitor: str) -> str:
    """'max' for accuracies, AUC, F1, returns, rewards, precision, recall, R²; else 'min'.

    >>> infer_mode("val_acc"), infer_mode("val_loss")
    ('max', 'min')
    """
    name = monitor.lower()
    return "max" if any(m in name for m in _MAXIMISE) else "min"


def _mode(monitor: str, mode: str | None) -> str:
    mode = mode or infer_mode(monitor)
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    return mode


class TrackMetrics(Callback):
    """Send each epoch's logs to the tracker on the axis `epoch` (`<name>/epoch` for a named
    fit), with `global_step` in the row so W&B can plot against either."""

    def __init__(self, tracker: Any, prefix: str = ""):
        self.tracker = tracker
        self.prefix = prefix

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        row = {f"{self.prefix}{k}": v for k, v in logs.items()}
        row["global_step"] = trainer.global_step
        self.tracker.log(row, step=epoch, axis=f"{self.prefix}epoch")


def cpu_copy(obj: Any) -> Any:
    """A copy of a (nested) state whose tensors are detached CPU copies."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj) if not hasattr(obj, "_fields") else obj
    return obj


class Checkpoint(Callback):
    """`last.pt` (everything needed to resume) and `best.pt` (the best weights by `monitor`).

    `last.pt` is written at most once per interval (`every`: "30s" by default, or "5 epochs",
    "500 steps"; checked between epochs), always at the end of the fit and on interrupt. The
    best weights are kept in memory (a CPU copy) and written to `best.pt` with `last.pt`, not
    on every improvement. Both files are written atomically. The end of the fit's write goes
    to a background writer thread, from a copy, while the lab evaluates and plots (or trains
    on); `lab run` / `labs.run` wait for it before the run counts as completed, and code that
    drives a `Trainer` itself and reads the files calls `checkpoint.wait_pending()` first.

    On interrupt mid-epoch, `last.pt` holds the state as of the last completed epoch (an
    in-memory snapshot taken between epochs), so a resumed run continues bit-identically; a
    kill by SIGKILL loses at most the interval. Put it before callbacks that change state in
    `on_epoch_start` (Run.fit does).

    >>> Checkpoint(run.checkpoints, monitor="val_acc", every="10 epochs")  # mode: max
    """

    # A snapshot costs ~0.1-1 ms (numpy's RNG state alone ~80 us): between very short epochs
    # take one only every so often, so that snapshots stay under this share of the training
    # time; a Ctrl-C then loses at most cost / share (~0.1-0.2 s) of epochs, never consistency.
    snapshot_share = 0.005

    def __init__(self, directory: Path, monitor: str = "val_loss", mode: str | None = None,
                 every: str | int = "30s", before_write: Callable[[], None] | None = None):
        self.dir = Path(directory)
        # e.g. the tracker's flush: the rows of every epoch last.pt holds are on disk first
        self.before_write = before_write
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.every, self.unit = parse_interval(every)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self._best_weights: dict[str, torch.Tensor] | None = None  # not yet in best.pt
        self._best_buf: dict[str, torch.Tensor] | None = None  # reused by every improvement
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_cost = self._snapshot_time = 0.0
        self._saved_at: tuple[int, int] | None = None  # (epoch, global step) in last.pt
        self._since = (0.0, 0, 0)  # time, epoch, step of the last write

    @property
    def state_key(self) -> str:
        return f"Checkpoint[{self.monitor}]"

    def on_fit_start(self, trainer: Trainer) -> None:
        self._since = (time.monotonic(), trainer.epoch, trainer.global_step)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        # between epochs, with every callback's epoch-end work done: a state to resume from
        if self._saved_at == (trainer.epoch, trainer.global_step):
            return
        if self._due(trainer):
            self._write(trainer, trainer.state_dict())
            self._snapshot = None
            return
        t0 = time.perf_counter()
        if (self._snapshot is None or
                (t0 - self._snapshot_time) * self.snapshot_share >= self._snapshot_cost):
            state = trainer.state_dict()
            history = state.pop("history")
            self._snapshot = {**cpu_copy(state), "history": list(history)}
            self._snapshot_time = time.perf_counter()
            self._snapshot_cost = self._snapshot_time - t0

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = _monitored(self, logs)
        if value is not None and _better(value, self.best, self.mode):
            self.best, self.best_epoch = value, epoch
            model = getattr(trainer.model, "_orig_mod", trainer.model)
            self._best_weights = self._copy_into_buffer(model.state_dict())

    def _copy_into_buffer(self, weights: dict[str, Any]) -> dict[str, Any]:
        """A CPU copy of `weights` in buffers reused across improvements: a monitor that
        improves every epoch no longer allocates a model's worth of tensors every epoch."""
        buf = self._best_buf
        if (buf is None or buf.keys() != weights.keys() or any(
                not isinstance(v, torch.Tensor) or buf[k].shape != v.shape
                or buf[k].dtype != v.dtype for k, v in weights.items())):
            self._best_buf = buf = cpu_copy(weights)
            return buf
        with torch.no_grad():
            for k, v in weights.items():
                buf[k].copy_(v)
        return buf

    def on_fit_end(self, trainer: Trainer) -> None:
        # written in the background from a copy: the lab evaluates, plots and explains (or
        # trains the same model further) meanwhile; the runner waits before "completed"
        self._flush(trainer, trainer.state_dict(), background=True)

    def on_interrupt(self, trainer: Trainer) -> None:
        # mid-epoch the live state is part of an epoch on: write the latest between-epoch one
        checkpoint.wait_pending()  # an earlier queued write must not land after this one
        self._flush(trainer, self._snapshot if trainer.in_epoch else trainer.state_dict())

    def _flush(self, trainer: Trainer, state: dict[str, Any] | None,
               background: bool = False) -> None:
        newer = state is not None and (self._saved_at is None or
                                       state["global_step"] > self._saved_at[1])
        if newer:
            self._write(trainer, state, background)
        elif self._best_weights is not None:
            self._write_best(background)

    def _due(self, trainer: Trainer) -> bool:
        t, epoch, step = self._since
        if self.unit == "epoch":
            return trainer.epoch - epoch >= self.every
        if self.unit == "step":
            return trainer.global_step - step >= self.every
        return time.monotonic() - t >= self.every

    def _write(self, trainer: Trainer, state: dict[str, Any], background: bool = False) -> None:
        if self.before_write is not None:
            self.before_write()
        if background:
            history = state.pop("history")
            state = {**cpu_copy(state), "history": [dict(e) for e in history]}
            checkpoint.save_in_background(state, self.dir / "last.pt")
        else:
            checkpoint.save(state, self.dir / "last.pt")
        self._saved_at = (state["epoch"], state["global_step"])
        self._since = (time.monotonic(), state["epoch"], state["global_step"])
        if self._best_weights is not None:
            self._write_best(background)

    def _write_best(self, background: bool = False) -> None:
        state = {"model": self._best_weights, "epoch": self.best_epoch, self.monitor: self.best}
        if background:  # the buffer goes with the write; a later improvement gets a new one
            checkpoint.save_in_background(state, self.dir / "best.pt")
            self._best_buf = None
        else:
            checkpoint.save(state, self.dir / "best.pt")
        self._best_weights = None

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = state.get("best_epoch", 0)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs.

    `mode` is inferred from the name when not given (`val_acc`: max, `val_loss`: min).

    >>> EarlyStopping(patience=5, monitor="val_acc")
    """

    def __init__(self, patience: int, monitor: str = "val_loss", mode: str | None = None,
                 min_delta: float = 0.0):
        self.patience = patience
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = min_delta
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch = 0

    @property
    def state_key(self) -> str:
        return f"EarlyStopping[{self.monitor}]"

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = _monitored(self, logs)
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
            shown = {k: f"{v:.4g}" for k, v in logs.items()
                     if k != "epoch_time" and not k.startswith("lr/")}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    on_interrupt = on_fit_end


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


def _monitored(cb: Callback, logs: dict[str, float]) -> float | None:
    """The monitored value of an epoch; a monitor that is never logged (a GAN step returns no
    `loss`) is said once, not silently ignored for the whole fit."""
    if cb.monitor == "none":  # the lab watches nothing (a GAN): no best.pt
        return None
    value = logs.get(cb.monitor)
    if value is None and not getattr(cb, "_told_missing", False):
        cb._told_missing = True
        import warnings

        shown = ", ".join(k for k in logs if k.startswith(("train_", "val_")))
        warnings.warn(f"{type(cb).__name__}: monitor '{cb.monitor}' is not logged (logged: "
                      f"{shown}); pass run.fit(monitor=...) one of those", RuntimeWarning,
                      stacklevel=2)
    return value
