"""The one training loop every PyTorch lab shares: a loop plus hooks.

The loop knows devices, mixed precision on CUDA, gradient clipping, LR schedules and the state
needed to resume. Everything else (logging, checkpoints, early stopping, progress) plugs in as
a `Callback`; adding behaviour never edits the loop. A custom `step` (e.g. a GAN's alternating
generator/discriminator updates with two optimizers) replaces the supervised step without
bypassing the trainer.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from labs import distributed  # ddp

Batch = tuple[torch.Tensor, torch.Tensor]
StepFn = Callable[["Trainer", torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


class Callback:
    """Hooks the trainer calls. Override what you need; `state_dict` is saved in checkpoints."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class History:
    """Per-epoch logs of one fit."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    def series(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs if key in e]

    @property
    def last(self) -> dict[str, float]:
        return self.epochs[-1] if self.epochs else {}


def supervised_step(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward, loss, backward, (clip), optimizer step. Returns the loss and the outputs."""
    opt = trainer.optimizer
    opt.zero_grad(set_to_none=True)
    with trainer.autocast():
        out = trainer.model(x)
        loss = trainer.loss_fn(out, y)
    trainer.backward(loss)
    trainer.optimizer_step(opt)
    return {"loss": loss.detach(), "out": out.detach()}


class Trainer:
    """Fit a model on batches of (x, y) with callbacks.

    >>> trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), epochs=10)
    >>> history = trainer.fit(TensorLoader(data.train, 64), val=data.val)
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                 loss_fn: Callable | None = None, *, epochs: int = 10,
                 device: torch.device | str = "cpu", scheduler: Any = None,
                 grad_clip: float = 0.0, amp: bool = False, metrics: Sequence[str] = ("acc",),
                 callbacks: Iterable[Callback] = (), step: StepFn = supervised_step,
                 eval_batch_size: int = 4096):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.epochs = epochs
        self.scheduler = scheduler
        self.grad_clip = grad_clip
        self.metrics = tuple(metrics)
        self.callbacks = list(callbacks)
        self.step = step
        self.eval_batch_size = eval_batch_size
        self.amp = amp and self.device.type == "cuda"
        # bf16 needs no loss scaling; fp16 (older GPUs) does
        self.amp_dtype = (torch.bfloat16 if self.amp and torch.cuda.is_bf16_supported()
                          else torch.float16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and
                                           self.amp_dtype == torch.float16)
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.should_stop = False
        self.history = History()

    # -- pieces a custom step uses -----------------------------------------------------------

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def optimizer_step(self, optimizer: torch.optim.Optimizer,
                       params: Iterable[torch.Tensor] | None = None) -> None:
        """Unscale, clip the gradient norm (when `grad_clip` > 0) and step."""
        if self.grad_clip > 0:
            self.scaler.unscale_(optimizer)
            ps = params if params is not None else (
                p for g in optimizer.param_groups for p in g["params"])
            torch.nn.utils.clip_grad_norm_(list(ps), self.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    # -- the loop ----------------------------------------------------------------------------

    def fit(self, train: Iterable[Batch], val: Any = None) -> History:
        """Train from `self.epoch` (0, or where a loaded checkpoint stopped) to `self.epochs`."""
        self._call("on_fit_start")
        while self.epoch < self.epochs and not self.should_stop:
            epoch = self.epoch + 1
            if hasattr(train, "set_epoch"):
                train.set_epoch(epoch)
            self._call("on_epoch_start", epoch)
            t0 = time.perf_counter()
            logs = self._train_epoch(train)
            logs = distributed.all_reduce_mean(logs)  # ddp: every rank logs (and stops) alike
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
            if isinstance(self.optimizer, dict):
                logs.update({f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizer.items()})
            elif self.optimizer is not None:
                logs["lr"] = self.optimizer.param_groups[0]["lr"]
            if self.scheduler is not None:
                self.scheduler.step()
            logs["epoch_time"] = time.perf_counter() - t0
            self.epoch = epoch
            self.history.epochs.append({"epoch": epoch, **logs})
            self._call("on_epoch_end", epoch, logs)
        self._call("on_fit_end")
        return self.history

    def _train_epoch(self, train: Iterable[Batch]) -> dict[str, float]:
        self.model.train()
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        n = 0
        scored = False
        for x, y in train:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            out = self.step(self, x, y)
            # accumulate on the device: no host sync per batch
            total += out["loss"].float() * len(x)
            if "acc" in self.metrics and "out" in out:
                correct += _correct(out["out"], y)
                scored = True
            n += len(x)
            self.global_step += 1
        logs = {"train_loss": (total / max(n, 1)).item()}
        if scored:
            logs["train_acc"] = (correct / max(n, 1)).item()
        return logs

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Model outputs for `x`, in large batches, in eval mode."""
        self.model.eval()
        outs = []
        for i in range(0, len(x), self.eval_batch_size):
            with self.autocast():
                outs.append(self.model(x[i:i + self.eval_batch_size].to(self.device)).float())
        return torch.cat(outs) if outs else torch.empty(0)

    @torch.no_grad()
    def evaluate(self, split: Any) -> dict[str, float]:
        """Loss (and accuracy) on a `Split` or on an iterable of (x, y) batches."""
        if hasattr(split, "x"):
            batches = [(split.x, split.y)]
        else:
            batches = split
        total, correct, n = 0.0, 0.0, 0
        for x, y in batches:
            y = y.to(self.device)
            out = self.predict(x)
            if self.loss_fn is not None:
                total += float(self.loss_fn(out, y)) * len(x)
            if "acc" in self.metrics:
                correct += float(_correct(out, y))
            n += len(x)
        res = {"loss": total / max(n, 1)}
        if "acc" in self.metrics:
            res["acc"] = correct / max(n, 1)
        return res

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # -- state for checkpoints ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            # a torch.compile'd model saves its original module's keys: checkpoints stay portable
            "model": distributed.unwrap(self.model).state_dict(),  # ddp
            "optimizer": _opt_state(self.optimizer),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": self.history.epochs,
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from labs.checkpoint import load_weights

        load_weights(distributed.unwrap(self.model), state["model"])  # ddp
        _load_opt_state(self.optimizer, state.get("optimizer"))
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state.get("global_step", 0))
        self.history = History(list(state.get("history", [])))
        saved = state.get("callbacks", {})
        for cb in self.callbacks:
            if type(cb).__name__ in saved:
                cb.load_state_dict(saved[type(cb).__name__])
        set_rng_state(state.get("rng"))


def _correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if out.ndim == 1 or out.shape[-1] == 1:  # one logit: binary
        pred = (out.reshape(-1) > 0).long()
    else:
        pred = out.argmax(-1)
    return (pred == y.reshape(pred.shape).long()).sum()


def _opt_state(opt: Any) -> Any:
    if opt is None:
        return None
    if isinstance(opt, dict):
        return {k: o.state_dict() for k, o in opt.items()}
    return opt.state_dict()


def _load_opt_state(opt: Any, state: Any) -> None:
    if opt is None or state is None:
        return
    if isinstance(opt, dict):
        for k, o in opt.items():
            o.load_state_dict(state[k])
    else:
        opt.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    """Every random generator a run uses, so a resumed run draws what the original would."""
    version, words, gauss = random.getstate()
    # tensors, not a tuple of 625 Python ints: pickling those dominated a small checkpoint
    state = {"torch": torch.get_rng_state(), "numpy": _np_state(),
             "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64),
                        "gauss": gauss}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _np_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
            "has_gauss": has_gauss, "cached": cached}


def set_rng_state(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    s = state["numpy"]
    np.random.set_state(("MT19937", s["keys"].numpy().astype(np.uint32), s["pos"],
                         s["has_gauss"], s["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["words"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
