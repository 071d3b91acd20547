"""The one training loop every PyTorch lab shares: a loop plus hooks.

The loop knows devices, mixed precision on CUDA, gradient clipping, LR schedules (per epoch or
per step) and the state needed to resume. Everything else (logging, checkpoints, early stopping,
progress) plugs in as a `Callback`; adding behaviour never edits the loop.

A batch may have any structure: a tensor, a tuple `(x, y)` or `(x, lengths, y)`, a dict, a
`PackedSequence`, nested. `to_device` moves all of it; `split_batch` says which part is the
target. The training `step` and the evaluation `eval_step` are both replaceable: a VAE returns
`{"loss", "recon", "kl"}`, a GAN alternates two optimizers and returns `{"d_loss", "g_loss"}`;
every scalar a step returns is averaged over the epoch's batches that returned it (weighted by
batch size) and logged as `train_<key>` / `val_<key>`. Values stay on the device until the
epoch ends: one host sync per epoch.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from labs import distributed
from labs.data import to_device  # noqa: F401  (part of the trainer API: custom steps use it)
from labs.errors import TrainingDiverged

Batch = Any  # a tensor, a tuple/list, a dict or a PackedSequence, nested as a lab likes
StepFn = Callable[["Trainer", Batch], dict[str, Any]]
TARGET_KEYS = ("y", "target")


class Callback:
    """Hooks the trainer calls. Override what you need; `state_dict` is saved in checkpoints
    under `state_key` (the class name unless a callback says otherwise).

    >>> class FreezeBatchNorm(Callback):
    ...     def on_epoch_start(self, trainer, epoch):  # runs after model.train()
    ...         backbone.apply(lambda m: m.eval() if isinstance(m, nn.BatchNorm2d) else None)
    """

    @property
    def state_key(self) -> str:
        return type(self).__name__

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_start(self, trainer: Trainer, batch_idx: int, batch: Batch) -> None: ...

    def on_batch_end(self, trainer: Trainer, batch_idx: int, batch: Batch,
                     out: dict[str, Any]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def on_interrupt(self, trainer: Trainer) -> None:
        """Ctrl-C (or SIGTERM turned into KeyboardInterrupt) stopped `fit`; it re-raises next."""

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


# -- batches ---------------------------------------------------------------------------------

def split_batch(batch: Batch) -> tuple[tuple, dict[str, Any], Any]:
    """(positional inputs, keyword inputs, target) of a batch, by the default convention:

    - a tuple/list: the last element is the target, the others are the model's inputs
      (`(x, y)` -> `model(x)`, `(x, lengths, y)` -> `model(x, lengths)`);
    - a dict: `"y"` (or `"target"`) is the target, `"x"` the first positional input and every
      other key a keyword input (`{"x", "lengths", "y"}` -> `model(x, lengths=lengths)`);
    - anything else (a tensor, a PackedSequence): the only input, with no target (an
      autoencoder's default loss then compares the output with the input).
    """
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return (batch[0],), {}, None
        return tuple(batch[:-1]), {}, batch[-1]
    if isinstance(batch, dict):
        kwargs = dict(batch)
        target = next((kwargs.pop(k) for k in TARGET_KEYS if k in kwargs), None)
        args = (kwargs.pop("x"),) if "x" in kwargs else ()
        return args, kwargs, target
    return (batch,), {}, None


def batch_size(batch: Batch) -> int:
    """Samples in a batch: the first dimension of its target, else of its first tensor."""
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[-1], torch.Tensor):
        return len(batch[-1])
    if isinstance(batch, PackedSequence):
        return int(batch.batch_sizes[0])
    if isinstance(batch, torch.Tensor):
        return len(batch)
    if isinstance(batch, dict):
        target = next((batch[k] for k in TARGET_KEYS if k in batch), None)
        if isinstance(target, torch.Tensor):
            return len(target)
        items = batch.values()
    elif isinstance(batch, (tuple, list)):
        items = batch
    else:
        return 1
    return next((batch_size(v) for v in items
                 if isinstance(v, (torch.Tensor, PackedSequence, dict, tuple, list))), 1)


def first(out: Any) -> Any:
    """The first element of a tuple/list output (a VAE's reconstruction), else `out`."""
    return out[0] if isinstance(out, (tuple, list)) else out


def forward(trainer: Trainer, batch: Batch) -> tuple[Any, Any, Any]:
    """Run the model on a batch by `split_batch`'s convention: (output, loss target, target).

    The loss target is the target, or the first input when there is none (autoencoders).
    """
    args, kwargs, target = split_batch(batch)
    out = trainer.model(*args, **kwargs)
    return out, (target if target is not None else (args or tuple(kwargs.values()))[0]), target


# -- the default steps -----------------------------------------------------------------------

def supervised_step(trainer: Trainer, batch: Batch) -> dict[str, Any]:
    """Forward, loss, backward, (clip), optimizer step. Returns the loss and the outputs.

    A tuple output (e.g. a VAE's `(recon, mu, logvar)`) passes its first element to the loss;
    write a step of your own to use the rest.
    """
    opt = trainer.optimizer
    opt.zero_grad(set_to_none=True)
    with trainer.autocast():
        out, target, _ = forward(trainer, batch)
        loss = trainer.loss_fn(first(out), target)
    trainer.backward(loss)
    trainer.optimizer_step(opt)
    return {"loss": loss.detach(), "out": out}


def supervised_eval_step(trainer: Trainer, batch: Batch) -> dict[str, Any]:
    """The loss (when the trainer has a `loss_fn`) and the outputs; runs under `no_grad`."""
    with trainer.autocast():
        out, target, _ = forward(trainer, batch)
        res = {"out": out}
        if trainer.loss_fn is not None:
            res["loss"] = trainer.loss_fn(first(out), target)
    return res


def augmented_step(transform: Callable[[Any], Any], step: StepFn = supervised_step) -> StepFn:
    """A training step that applies `transform` to each batch's inputs, then runs `step`.

    The inputs are what `split_batch` calls the first input: `x` of `(x, y)`, the `"x"` of a
    dict, or the batch itself. Training only: evaluation keeps `supervised_eval_step`.

    >>> run.fit(model, data, step=augmented_step(images.random_shifts(1, (8, 8))))
    """
    def augmented(trainer: Trainer, batch: Batch) -> dict[str, Any]:
        if isinstance(batch, (tuple, list)) and len(batch) > 1:
            batch = type(batch)([transform(batch[0]), *batch[1:]])
        elif isinstance(batch, dict) and "x" in batch:
            batch = {**batch, "x": transform(batch["x"])}
        elif not isinstance(batch, (tuple, list, dict)):
            batch = transform(batch)
        else:
            raise TypeError(f"augmented_step: no input to transform in a {type(batch).__name__} "
                            f"batch")
        return step(trainer, batch)

    return augmented


class _Means:
    """Batch-size-weighted means of the scalars steps return, and accuracy, on the device.

    Each batch's values are kept as they come (no arithmetic per step: an `add_` per batch was
    a few percent of a small model's epoch) and reduced once, in `result`; the kept values also
    tell which batch first went NaN."""

    def __init__(self, acc: bool):
        self.values: dict[str, list[tuple[Any, int, int]]] = {}  # key: [(value, n, batch)]
        self.acc = acc
        self.preds: list[torch.Tensor] = []  # compared with the targets once, at the end
        self.targets: list[torch.Tensor] = []
        self.batches = 0

    def add(self, out: dict[str, Any], batch: Batch, n: int) -> None:
        i = self.batches
        self.batches += 1
        for k, v in out.items():
            if k == "out":
                continue
            if isinstance(v, torch.Tensor):
                if v.ndim:
                    if v.numel() != 1:
                        continue
                    v = v.reshape(())
                v = v.detach()
            elif not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            kept = self.values.get(k)
            if kept is None:
                self.values[k] = kept = []
            kept.append((v, n, i))
        if self.acc and "out" in out:
            target = split_batch(batch)[2]
            if isinstance(target, torch.Tensor):
                o = first(out["out"]).detach()
                # a classifier's few logits per sample are kept and scored in one argmax per
                # epoch (an argmax per batch was a tenth of a small MLP's step); wide outputs
                # (a sequence's, a segmentation's) are reduced now, to keep memory small
                self.preds.append(o if o.ndim <= 2 and o.shape[-1] <= 64 else _predicted(o))
                self.targets.append(target)

    def result(self) -> dict[str, float]:
        """The means (a key's over the batches that returned it): one host sync for all device
        sums (on the CPU, `.item()` each: cheaper than stacking a handful of scalars)."""
        sums: dict[str, Any] = {}
        counts: dict[str, int] = {}
        for k, kept in self.values.items():
            counts[k] = max(sum(n for _, n, _ in kept), 1)
            dev = next((v.device for v, _, _ in kept if isinstance(v, torch.Tensor)), None)
            if dev is None or dev.type == "cpu":  # .item() costs nothing here: nothing to wait for
                sums[k] = math.fsum((v.item() if isinstance(v, torch.Tensor) else v) * n
                                    for v, n, _ in kept)
            else:  # summed on the device: the one sync is below
                sums[k] = _weighted_sum(kept, dev)
        if self.preds:
            preds = [_predicted(p).reshape(-1) if p.is_floating_point() else p.reshape(-1)
                     for p in _concat_logits(self.preds)]
            targets = [t.reshape(-1) for t in self.targets]
            pred = preds[0] if len(preds) == 1 else torch.cat(preds)
            target = targets[0] if len(targets) == 1 else torch.cat(targets)
            sums["acc"] = (pred == target).sum()  # a share of the predictions (tokens, pixels)
            counts["acc"] = max(len(pred), 1)
        dev = [k for k, v in sums.items() if isinstance(v, torch.Tensor)]
        if dev and sums[dev[0]].device.type != "cpu":
            values = torch.stack([sums[k].double() for k in dev]).tolist()
        else:
            values = [sums[k].item() for k in dev]
        sums.update(zip(dev, values))
        return {k: v / counts[k] for k, v in sums.items()}

    def first_bad(self, key: str) -> tuple[int, Any]:
        """(batch index, value) of the first non-finite value of `key` this epoch."""
        kept = self.values[key]
        finite = torch.isfinite(torch.stack([torch.as_tensor(v, dtype=torch.float32)
                                             .reshape(()).cpu() for v, _, _ in kept]))
        bad = (~finite).nonzero()
        if not len(bad):  # every batch finite: the sum overflowed
            return kept[-1][2], float("inf")
        j = int(bad[0, 0])
        return kept[j][2], kept[j][0]


class Trainer:
    """Fit a model on batches of any structure with callbacks.

    >>> trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), epochs=10)
    >>> history = trainer.fit(TensorLoader(data.train, 64), val=data.val)
    >>> trainer.evaluate(data.test)  # {"loss": ..., "acc": ...}

    `step(trainer, batch)` replaces the training step and `eval_step(trainer, batch)` the
    evaluation step (run in eval mode under `no_grad`); both return a dict of scalars (logged
    as `train_<k>` / `val_<k>`) and optionally `"out"`, the outputs accuracy is scored on.
    `scheduler` (one, or a dict like the optimizers) steps once per epoch, or once per batch
    with `scheduler_interval="step"` (OneCycleLR, warmup).
    """

    def __init__(self, model: nn.Module, optimizer: Any,
                 loss_fn: Callable | None = None, *, epochs: int = 10,
                 device: torch.device | str = "cpu", scheduler: Any = None,
                 scheduler_interval: str = "epoch", grad_clip: float = 0.0, amp: bool = False,
                 metrics: Sequence[str] = ("acc",), callbacks: Iterable[Callback] = (),
                 step: StepFn = supervised_step, eval_step: StepFn = supervised_eval_step,
                 eval_batch_size: int = 4096, channels_last: bool = False):
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', not "
                             f"{scheduler_interval!r}")
        self.device = torch.device(device)
        # channels-last: NHWC memory for 4-D image batches and conv weights, what cuDNN's
        # tensor-core convolutions want under mixed precision (a no-op for other models)
        self.memory_format = torch.channels_last if channels_last else None
        self.model = model.to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.epochs = epochs
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.grad_clip = grad_clip
        self.metrics = tuple(metrics)
        self.callbacks = list(callbacks)
        self.step = step
        self.eval_step = eval_step
        self.eval_batch_size = eval_batch_size
        self.amp = amp and self.device.type == "cuda"
        # bf16 needs no loss scaling; fp16 (older GPUs) does
        self.amp_dtype = (torch.bfloat16 if self.amp and torch.cuda.is_bf16_supported()
                          else torch.float16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and
                                           self.amp_dtype == torch.float16)
        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer iterations (batches) completed
        self.in_epoch = False  # True while the state is past `epoch` but its epoch is unfinished
        self.should_stop = False
        self.history = History()
        self._norms: torch.Tensor | None = None  # sum of this epoch's pre-clip gradient norms
        self._norm_count = 0

    # -- pieces a custom step uses -----------------------------------------------------------

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def optimizer_step(self, optimizer: torch.optim.Optimizer,
                       params: Iterable[torch.Tensor] | None = None) -> None:
        """Unscale, clip the gradient norm (when `grad_clip` > 0) and step.

        The loss scaler is updated once per iteration by the loop, after the step function
        returns, however many optimizers the step used.
        """
        if self.grad_clip > 0:
            self.scaler.unscale_(optimizer)
            ps = params if params is not None else (
                p for g in optimizer.param_groups for p in g["params"])
            norm = torch.nn.utils.clip_grad_norm_(list(ps), self.grad_clip).detach()
            # the pre-clip norm, averaged over the epoch's steps (`train_grad_norm`): how hard
            # the clipping works, the exploding-gradient lesson in one curve
            self._norms = norm if self._norms is None else self._norms + norm
            self._norm_count += 1
        self.scaler.step(optimizer)

    def learning_rates(self) -> dict[str, float]:
        """`lr/group<i>` for every parameter group (`lr/<name>/group<i>` for a dict of
        optimizers)."""
        opts = self.optimizer if isinstance(self.optimizer, dict) else {"": self.optimizer}
        return {f"lr/{name}/group{i}" if name else f"lr/group{i}": float(g["lr"])
                for name, opt in opts.items() if opt is not None
                for i, g in enumerate(opt.param_groups)}

    def _schedulers(self) -> list[Any]:
        s = self.scheduler
        return [] if s is None else list(s.values()) if isinstance(s, dict) else [s]

    # -- the loop ----------------------------------------------------------------------------

    def fit(self, train: Iterable[Batch], val: Any = None) -> History:
        """Train from `self.epoch` (0, or where a loaded checkpoint stopped) to `self.epochs`.

        Order per epoch: `model.train()`, `on_epoch_start`, the batches (`on_batch_start`,
        step, per-step schedulers, `on_batch_end`), validation, per-epoch schedulers,
        `on_epoch_end`. A NaN or infinite training loss raises `TrainingDiverged` before the
        epoch counts; a KeyboardInterrupt calls `on_interrupt` and propagates.
        """
        keys = [cb.state_key for cb in self.callbacks]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise ValueError(f"two callbacks share the state_key {dup}: give one its own "
                             f"`state_key` so their checkpointed states stay apart")
        try:
            self._call("on_fit_start")
            while self.epoch < self.epochs and not self.should_stop:
                epoch = self.epoch + 1
                if hasattr(train, "set_epoch"):
                    train.set_epoch(epoch)
                self.model.train()  # before the hooks: a callback may set parts to eval mode
                self._call("on_epoch_start", epoch)
                t0 = time.perf_counter()
                lrs = self.learning_rates()  # as the epoch starts: what an epoch schedule used
                self.in_epoch = True
                logs = self._train_epoch(train, epoch)
                logs = distributed.all_reduce_mean(logs)  # every rank logs (and stops) alike
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
                logs.update(lrs)
                if self.scheduler_interval == "epoch":
                    for s in self._schedulers():
                        s.step()
                logs["epoch_time"] = time.perf_counter() - t0
                self.epoch = epoch
                self.in_epoch = False
                self.history.epochs.append({"epoch": epoch, **logs})
                self._call("on_epoch_end", epoch, logs)
            self._call("on_fit_end")
        except KeyboardInterrupt:
            self._call("on_interrupt")
            raise
        return self.history

    def _train_epoch(self, train: Iterable[Batch], epoch: int) -> dict[str, float]:
        means = _Means("acc" in self.metrics)
        starts = self._overriding("on_batch_start")
        ends = self._overriding("on_batch_end")
        per_step = self._schedulers() if self.scheduler_interval == "step" else []
        step0 = self.global_step
        self._norms, self._norm_count = None, 0
        for i, batch in enumerate(train):
            batch = self._to_device(batch)
            for cb in starts:
                cb.on_batch_start(self, i, batch)
            out = self.step(self, batch)
            self.scaler.update()  # once per iteration, however many optimizers stepped
            for s in per_step:
                s.step()
            self.global_step += 1
            means.add(out, batch, batch_size(batch))
            for cb in ends:
                cb.on_batch_end(self, i, batch, out)
        logs = {f"train_{k}": v for k, v in means.result().items()}
        if self._norm_count:
            logs["train_grad_norm"] = float(self._norms) / self._norm_count
        bad = [k for k, v in logs.items() if not math.isfinite(v) and k != "train_acc"]
        if bad:
            self._diverged(epoch, step0, means, [k[len("train_"):] for k in bad])
        return logs

    def _diverged(self, epoch: int, step0: int, means: _Means, keys: list[str]) -> None:
        """Raise `TrainingDiverged` naming the first batch whose loss was not finite."""
        firsts = [(*means.first_bad(k), k) for k in keys if k in means.values]
        if not firsts:  # only the gradient norm: no batch of its own to name
            raise TrainingDiverged(f"training diverged: {', '.join(keys)} not finite at epoch "
                                   f"{epoch}; lower the learning rate or set grad_clip")
        idx, value, key = min(firsts, key=lambda f: (f[0], f[2]))
        raise TrainingDiverged(
            f"training diverged: {key} became {float(value)} at epoch {epoch}, global step "
            f"{step0 + idx + 1} (batch {idx}); lower the learning rate or set grad_clip")

    @torch.no_grad()
    def predict(self, x: Any) -> torch.Tensor:
        """Model outputs for `x`, in large batches, in eval mode. For a tuple output, its first
        element (a VAE's reconstruction); call the model yourself for the rest."""
        self.model.eval()
        if not isinstance(x, torch.Tensor):
            with self.autocast():
                return first(self.model(self._to_device(x))).float()
        outs = []
        for i in range(0, len(x), self.eval_batch_size):
            with self.autocast():
                out = self.model(self._to_device(x[i:i + self.eval_batch_size]))
            outs.append(first(out).float())
        return torch.cat(outs) if outs else torch.empty(0)

    @torch.no_grad()
    def evaluate(self, split: Any) -> dict[str, float]:
        """The evaluation step's scalars (loss, ...) and accuracy, averaged over a `Split`
        (in `eval_batch_size` chunks) or an iterable of batches."""
        self.model.eval()
        means = _Means("acc" in self.metrics)
        for batch in self._eval_batches(split):
            batch = self._to_device(batch)
            means.add(self.eval_step(self, batch), batch, batch_size(batch))
        return means.result()

    def _eval_batches(self, split: Any) -> Iterator[Batch]:
        if not (hasattr(split, "x") and hasattr(split, "y")):
            yield from split
            return
        bs = self.eval_batch_size
        for i in range(0, len(split.x), bs):
            x = split.x[i:i + bs]
            yield x if split.y is None else (x, split.y[i:i + bs])

    def _to_device(self, batch: Batch) -> Batch:
        batch = to_device(batch, self.device, non_blocking=True)
        if self.memory_format is not None:
            batch = _channels_last(batch)
        return batch

    def _overriding(self, hook: str) -> list[Callback]:
        """The callbacks that override `hook`: per-batch hooks cost nothing when unused."""
        return [cb for cb in self.callbacks
                if getattr(type(cb), hook, None) is not getattr(Callback, hook)]

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # -- state for checkpoints ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        s = self.scheduler
        return {
            # the module inside DDP / torch.compile wrappers: checkpoints stay portable
            "model": distributed.unwrap(self.model).state_dict(),
            "optimizer": _opt_state(self.optimizer),
            "scheduler": _opt_state(s),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": self.history.epochs,
            "callbacks": {cb.state_key: cb.state_dict() for cb in self.callbacks},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any], path: Any = "") -> None:
        """Restore what `state_dict` saved; `path` names the file in error messages."""
        from labs.checkpoint import load_weights

        load_weights(distributed.unwrap(self.model), state["model"], path)
        _load_opt_state(self.optimizer, state.get("optimizer"))
        _load_opt_state(self.scheduler, state.get("scheduler"))
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state.get("global_step", 0))
        self.history = History(list(state.get("history", [])))
        saved = state.get("callbacks", {})
        for cb in self.callbacks:
            if cb.state_key in saved:
                cb.load_state_dict(saved[cb.state_key])
        set_rng_state(state.get("rng"))


def _channels_last(batch: Any) -> Any:
    """Every 4-D floating tensor of a batch in channels-last memory (labels stay as they are)."""
    if isinstance(batch, torch.Tensor):
        if batch.ndim == 4 and batch.is_floating_point():
            return batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return type(batch)((k, _channels_last(v)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_channels_last(v) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_channels_last(v) for v in batch)
    return batch


def _weighted_sum(kept: list[tuple[Any, int, int]], device: torch.device) -> torch.Tensor:
    """Sum of value x batch size over kept `(value, n, batch)`s, as one tensor on `device`."""
    values = torch.stack([torch.as_tensor(v, device=device).float() for v, _, _ in kept])
    return values @ torch.tensor([n for _, n, _ in kept], dtype=values.dtype, device=device)


def _concat_logits(preds: list[torch.Tensor]) -> list[torch.Tensor]:
    """Runs of kept logits of one shape joined into one tensor each (one argmax per run)."""
    shape = preds[0].shape[1:]
    if all(p.is_floating_point() and p.shape[1:] == shape for p in preds):  # the usual case
        return [preds[0] if len(preds) == 1 else torch.cat(preds)]
    groups: list[list[torch.Tensor]] = []
    for p in preds:
        last = groups[-1][-1] if groups else None
        if (last is not None and p.is_floating_point() and last.is_floating_point()
                and p.shape[1:] == last.shape[1:]):
            groups[-1].append(p)
        else:
            groups.append([p])
    return [g[0] if len(g) == 1 else torch.cat(g) for g in groups]


def _predicted(out: torch.Tensor) -> torch.Tensor:
    """Class predictions: the argmax, or for one logit per sample, logit > 0."""
    if out.ndim == 1 or out.shape[-1] == 1:
        return (out.reshape(out.shape[0], -1) > 0).long()
    return out.argmax(-1)


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
             "python": {"version": version, "gauss": gauss,
                        "words": torch.from_numpy(np.fromiter(words, np.int64, len(words)))}}
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


@contextlib.contextmanager
def rng_untouched() -> Iterator[None]:
    """Run a block without moving any global random generator a run draws from (python,
    numpy, torch on the CPU and on every CUDA device): `rng_state` before, `set_rng_state`
    after.

    For work a process does once inside a run and then caches, like building a cached model
    (`nn.Linear` draws its initial weights even when a checkpoint overwrites them at once):
    unguarded, only the first run in a process makes those draws, so it trains on other random
    numbers than every later run with the same seed and config."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
