"""Data-parallel training under torchrun: the rank seam labs never need to think about.

`torchrun --nproc-per-node N -m labs run <lab>` (or `lab run <lab> --devices N`, which launches
it) starts N copies of the same run. Every rank runs the lab's code; the framework makes them one
run:

- rank 0 alone writes the run directory, checkpoints, figures, explanations and W&B; the other
  ranks work in a scratch directory that is deleted at the end (`follow`);
- `Run.fit` wraps the model in `DistributedDataParallel` (`wrap_model`), so gradients are
  averaged across ranks, and gives each rank a disjoint shard of every batch (`shard`): the
  config's `batch_size` stays the *global* batch, so N ranks take the same optimizer steps as
  one process would, up to float error;
- the per-epoch training logs are averaged over ranks (`all_reduce_mean`), so every rank sees
  the same numbers and makes the same early-stopping decisions; every rank evaluates the whole
  validation / test split (the labs' data is small and in memory), so evaluation needs no
  communication and a lab may evaluate on one rank alone without deadlocking the others.

Everything here is a no-op in a single process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from labs.errors import LabError

# -- ranks ---------------------------------------------------------------------------------------


def launched() -> bool:
    """True in a process torchrun started (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env() -> None:
    """Join torchrun's process group (idempotent; nothing to do in a plain process).

    torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. CPU tensors go
    over gloo; on a CUDA machine CUDA tensors go over NCCL, and each process uses the GPU
    numbered by its LOCAL_RANK (one process per GPU).
    """
    if not launched() or dist.is_initialized():
        return
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"  # one group that carries both kinds of tensors
    dist.init_process_group(backend=backend)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """True on the process that writes the run (rank 0), and in a plain process."""
    return rank() == 0


def device(requested: torch.device) -> torch.device:
    """`requested`, pinned to this process's own GPU when it is CUDA."""
    if requested.type == "cuda" and launched() and torch.cuda.is_available():
        return torch.device("cuda", local_rank() % torch.cuda.device_count())
    return requested


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (torch warns at exit when a group was never destroyed)."""
    if dist.is_initialized():
        try:  # leave together: a rank tearing gloo down under a peer's collective aborts it
            dist.barrier()
        except Exception:  # a peer already gone: nothing left to wait for
            pass
        dist.destroy_process_group()


# -- communication -------------------------------------------------------------------------------


def all_reduce_mean(values: dict[str, Any], weight: float = 1.0) -> dict[str, float]:
    """The mean of each value over ranks, weighted by `weight` (e.g. this rank's sample count).

    Every rank must call it with the same keys. One all-reduce for the whole dict.
    """
    if world_size() == 1 or not values:
        return dict(values)
    keys = sorted(values)
    dev = _comm_device()
    t = torch.tensor([float(values[k]) * weight for k in keys] + [float(weight)],
                     dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return dict(zip(keys, (t[:-1] / t[-1]).tolist()))


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (any picklable object: a run id, a path)."""
    if world_size() == 1:
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src, device=_comm_device())
    return box[0]


def on_main(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` called on rank 0 alone; its result on every rank."""
    return broadcast_object(fn(*args, **kwargs) if is_main() else None)


def _comm_device() -> torch.device:
    # the few numbers exchanged here go over gloo, which every group has: NCCL would need each
    # rank on its own GPU even in a `--device cpu` run on a machine that has one GPU
    return torch.device("cpu")


# -- model and data ------------------------------------------------------------------------------


def wrap_model(model: nn.Module, device: torch.device, optimizer: Any = None, *,
               custom_step: bool = False) -> nn.Module:
    """`model` made data-parallel: `DistributedDataParallel` when there are several ranks.

    A custom step (a GAN's two optimizers) may call sub-modules directly, past the wrapper,
    where DDP would not see the backward pass; there the model stays unwrapped and each
    optimizer averages its gradients over ranks just before it steps.
    """
    if world_size() == 1 or not any(p.requires_grad for p in model.parameters()):
        return model
    if custom_step:
        _broadcast_parameters(model)
        for opt in (optimizer.values() if isinstance(optimizer, dict) else [optimizer]):
            if opt is not None:
                opt.register_step_pre_hook(_average_gradients)
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module a DDP and/or `torch.compile` wrapper holds: what checkpoints save."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _broadcast_parameters(model: nn.Module) -> None:
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=0)


def _average_gradients(optimizer: torch.optim.Optimizer, *_: Any) -> None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world_size()


class ShardedLoader:
    """This rank's part of every batch of a `TensorLoader`.

    Every rank draws the same seeded permutation and cuts the same global batches; rank r takes
    rows r, r+N, r+2N... of each. The shards are disjoint, cover each batch, and every rank takes
    the same number of steps (a rank that would get no row of a short last batch repeats one, so
    no rank waits forever on the others).
    """

    def __init__(self, loader: Any, rank: int, world_size: int):
        self.loader = loader
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            idx = slice(self.rank, None, self.world_size)
            if self.rank >= len(x):
                idx = slice(self.rank % len(x), self.rank % len(x) + 1)
            yield x[idx], y[idx]


class _SamplerLoader:
    """A DataLoader over a `DistributedSampler`, reshuffled by the trainer's `set_epoch`."""

    def __init__(self, loader: torch.utils.data.DataLoader):
        self.loader = loader

    def set_epoch(self, epoch: int) -> None:
        self.loader.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)


def shard(train: Any, *, batch_size: int | None = None, shuffle: bool = True, seed: int = 0,
          rank: int | None = None, world_size: int | None = None, **loader_kwargs: Any) -> Any:
    """This rank's share of the training data; `train` itself in a single process.

    - a `TensorLoader`: a `ShardedLoader` (global batches split across ranks);
    - a `DataLoader` over a map-style dataset, or a torch `Dataset` (give `batch_size`): a
      DataLoader with a `DistributedSampler`, each rank loading batch_size / N samples a step;
    - any other iterable cannot be split: every rank trains on all of it, which is still correct
      (the averaged gradients equal one process's) but not faster; a warning says so.
    """
    from labs.data import TensorLoader

    r = _rank() if rank is None else rank
    n = _world() if world_size is None else world_size
    if n == 1:
        return train
    if isinstance(train, TensorLoader):
        return ShardedLoader(train, r, n)
    DataLoader, Dataset = torch.utils.data.DataLoader, torch.utils.data.Dataset
    if isinstance(train, DataLoader) and not isinstance(train.dataset,
                                                        torch.utils.data.IterableDataset):
        shuffle = isinstance(train.sampler, torch.utils.data.RandomSampler)
        batch_size = train.batch_size
        loader_kwargs = {"num_workers": train.num_workers, "collate_fn": train.collate_fn,
                         "pin_memory": train.pin_memory, "drop_last": train.drop_last,
                         **loader_kwargs}
        train = train.dataset
    if isinstance(train, Dataset) and not isinstance(train, torch.utils.data.IterableDataset):
        if not batch_size:
            raise ValueError("shard(dataset) needs the global batch_size")
        sampler = torch.utils.data.DistributedSampler(train, num_replicas=n, rank=r,
                                                      shuffle=shuffle, seed=seed)
        return _SamplerLoader(DataLoader(train, batch_size=max(1, batch_size // n),
                                         sampler=sampler, **loader_kwargs))
    warnings.warn(f"{type(train).__name__} cannot be split across {n} ranks: every rank trains "
                  "on all of it (correct, not faster); pass a TensorLoader, a DataLoader or a "
                  "Dataset", RuntimeWarning, stacklevel=2)
    return train


_rank, _world = rank, world_size  # `shard`'s arguments shadow the functions


# -- ranks > 0 -------------------------------------------------------------------------------


def follow(lab_cls: type, name: str, run_id: str, path: Path, cfg: Any, dev: torch.device, *,
           resume: bool, callbacks: Sequence[Any] = ()) -> Any:
    """What a rank > 0 does with a run: the lab's code in a scratch directory, nothing kept.

    On resume, the scratch directory gets a copy of the run's checkpoints first, so every rank
    loads the same state (the runs directory must then be visible to every machine).
    """
    from labs import rundir
    from labs.context import Run
    from labs.runner import Result
    from labs.tracker import Tracker
    from labs.trainer import seed_everything

    scratch = Path(tempfile.mkdtemp(prefix=f"lab-rank{rank()}-"))
    try:
        for sub in rundir.SUBDIRS:
            (scratch / sub).mkdir()
        if resume and (path / "checkpoints").is_dir():
            shutil.copytree(path / "checkpoints", scratch / "checkpoints", dirs_exist_ok=True)
        # rank 0 cannot write checkpoints/ before this copy is done: wrapping the model in
        # `Run.fit` is a collective call that waits for every rank
        seed_everything(cfg.seed)
        tracker = Tracker(scratch, wandb_mode="disabled")
        run = Run(name, run_id, scratch, cfg, dev, tracker, resuming=resume,
                  callbacks=callbacks, progress=False)
        try:
            metrics = dict(lab_cls().run(cfg, run) or {})
        finally:
            tracker.finish()
        return Result(name, run_id, path, metrics, cfg, dict(run.models))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- launching -----------------------------------------------------------------------------------


def strip_devices(argv: Sequence[str]) -> list[str]:
    """`argv` without `--devices N` / `--devices=N` (the children must not launch again)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--devices":
            skip = True
        elif not a.startswith("--devices="):
            out.append(a)
    return out


def launch(n: int, argv: Sequence[str], name: str, overrides: dict[str, Any], *,
           config_file: str | None = None, resume: bool = False) -> int:
    """Run `lab <argv>` as `n` processes under torchrun on this machine; its exit status.

    The lab, its config and the device are checked here first, so a user's mistake is one line
    from this process rather than one from every rank plus torchrun's report.
    """
    from labs import device as device_mod
    from labs.runner import load_lab, resolve_config

    if n < 1:
        raise LabError(f"--devices must be at least 1, not {n}")
    if launched():
        raise LabError("--devices launches torchrun; this process is already one of its ranks")
    lab_cls = load_lab(name)
    if resume:  # the saved config is checked by the ranks; only the device can change
        dev = device_mod.choose(str(overrides.get("device", "auto")))
    else:
        dev = device_mod.choose(resolve_config(lab_cls, overrides, config_file).device)
    if dev.type == "cuda" and n > torch.cuda.device_count():
        raise LabError(f"--devices {n} asks for more processes than the "
                       f"{torch.cuda.device_count()} GPU(s) here (one process per GPU); "
                       "use --device cpu to run several CPU processes")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={n}", "-m", "labs", *strip_devices(argv)]
    env = dict(os.environ)
    # torchrun sets 1 thread per process (with a warning) unless told: share the cores out
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    return subprocess.call(cmd, env=env)
