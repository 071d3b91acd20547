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


class BestWeights:
    """The model weights of the best epoch so far: a CPU copy, in buffers reused across
    improvements (a monitor that improves every epoch does not allocate a model's worth of
    tensors every epoch). `Checkpoint` (for best.pt) and `EarlyStopping(restore_best=True)`
    each keep one."""

    def __init__(self):
        self.weights: dict[str, Any] | None = None
        self._buf: dict[str, Any] | None = None

    def keep(self, trainer: Trainer) -> dict[str, Any]:
        """Copy the trainer's model weights (inside DDP / torch.compile wrappers, so the keys
        are the plain module's) into the buffers; returns them."""
        from labs import distributed

        weights = distributed.unwrap(trainer.model).state_dict()
        buf = self._buf
        if (buf is None or buf.keys() != weights.keys() or any(
                not isinstance(v, torch.Tensor) or buf[k].shape != v.shape
                or buf[k].dtype != v.dtype for k, v in weights.items())):
            self._buf = buf = cpu_copy(weights)
        else:
            with torch.no_grad():
                for k, v in weights.items():
                    buf[k].copy_(v)
        self.weights = buf
        return buf

    def hand_off(self) -> None:
        """The buffers now belong to someone else (a background write): forget them; the
        next `keep` allocates new ones."""
        self._buf = self.weights = None

    def load(self, weights: dict[str, Any]) -> None:
        """Weights from a checkpoint (perhaps mapped to the GPU): kept as our own CPU copy."""
        self._buf = self.weights = cpu_copy(weights)

    def restore(self, trainer: Trainer) -> None:
        """Load the kept weights into the trainer's model."""
        from labs import distributed

        model = distributed.unwrap(trainer.model)
        with torch.no_grad():
            model.load_state_dict(self.weights)


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
        self._best = BestWeights()
        self._best_weights: dict[str, torch.Tensor] | None = None  # not yet in best.pt
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
            self._best_weights = self._best.keep(trainer)

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
            self._best.hand_off()
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
    `restore_best=True` (Keras' `restore_best_weights`): when the fit ends, stopped early or
    not, the model gets back the weights of its best epoch (`best_epoch`), so what is
    evaluated next is the epoch early stopping chose, not the `patience` epochs after it. It
    keeps a CPU copy of those weights, which goes into `last.pt` with the callback's state, so
    a resumed run restores the same epoch. Place it after `Checkpoint` (as `Run.fit` does):
    `last.pt` then keeps the last epoch's weights, the state a resume continues from. Off by
    default here, as in Keras; `Run.fit` sets it from `cfg.restore_best` (on by default).

    >>> EarlyStopping(patience=5, monitor="val_acc", restore_best=True)
    """

    def __init__(self, patience: int, monitor: str = "val_loss", mode: str | None = None,
                 min_delta: float = 0.0, restore_best: bool = False):
        self.patience = patience
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self._best = BestWeights()

    @property
    def state_key(self) -> str:
        return f"EarlyStopping[{self.monitor}]"

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = _monitored(self, logs)
        if value is None:
            return
        delta = -self.min_delta if self.mode == "min" else self.min_delta
        if _better(value, self.best + delta, self.mode):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self._best.keep(trainer)
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.should_stop = True
                self.stopped_epoch = epoch

    def on_fit_end(self, trainer: Trainer) -> None:
        if not self.restore_best or self.best_epoch in (0, trainer.epoch):
            return  # nothing watched, or the best epoch is the last: nothing to restore
        if self._best.weights is None:
            import warnings

            warnings.warn(f"EarlyStopping: the weights of the best epoch ({self.best_epoch}) "
                          f"are not in the checkpoint this fit resumed from; the model keeps "
                          f"those of epoch {trainer.epoch}", RuntimeWarning, stacklevel=2)
            return
        self._best.restore(trainer)

    def state_dict(self) -> dict[str, Any]:
        state = {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch}
        if self.restore_best and self._best.weights is not None:
            state["weights"] = self._best.weights  # a resumed run restores the same epoch
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]
        self.best_epoch = state.get("best_epoch", 0)
        if self.restore_best and state.get("weights") is not None:
            self._best.load(state["weights"])


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
