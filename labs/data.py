"""Datasets, their splits, and `make_loader`, the one way the trainer batches a split.

A split is either an in-memory `Split` of tensors (digits, gates, tabular data) or any lazy
`torch.utils.data.Dataset` (torchvision's MNIST, a text corpus) that reads its items on demand.

- In-memory splits are moved to the device once and sliced with a seeded permutation
  (`TensorLoader`): several times faster than a per-sample `DataLoader` for small data
  (see benchmarks/bench_trainer.py).
- Lazy splits are batched by a `DataLoader` whose shuffle is reseeded every epoch
  (`SeededLoader`), so a resumed run sees the same batches in the same order as an
  uninterrupted one.

A supervised split yields `(x, y)` batches; an unsupervised one (`Split(x)`, or a lazy dataset
whose items are single inputs) yields `x` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

SAMPLE_LIMIT = 256  # items `Dataset.sample` reads from a lazy split when not told how many


@dataclass
class Split:
    """Inputs and (optional) targets of one split, as tensors. `y` is None when unlabelled."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"Split has {len(self.x)} inputs but {len(self.y)} targets")

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), None if self.y is None else self.y.to(device))


def is_lazy(split: Any) -> bool:
    """True for a lazy torch dataset, False for an in-memory `Split`."""
    return split is not None and not isinstance(split, Split)


@dataclass
class Dataset:
    """Train / validation / test splits plus what explanations and plots need to know.

    Each split is a `Split` or a lazy `torch.utils.data.Dataset`; the metadata lives here, not
    in the splits, so both kinds explain and plot alike.
    """

    train: Split | Any
    test: Split | Any
    val: Split | Any | None = None
    n_classes: int = 0  # 0 for regression and for unlabelled data
    feature_names: Sequence[str] | None = None
    class_names: Sequence[str] | None = None
    image_shape: tuple[int, ...] | None = None  # how one sample looks as an image
    # maps one sample (reshaped to image_shape) back to something imshow can show
    display: Callable[[np.ndarray], np.ndarray] | None = None
    # maps raw feature values (a CSV row; an image file's pixels scaled to [0, pixel_max]) to
    # model inputs, so `lab explain --input FILE` explains what the model really sees
    encode: Callable[[np.ndarray], np.ndarray] | None = None
    pixel_max: float = 1.0
    # mean raw pixel value / pixel_max of the training images: below 0.5 the data is light ink
    # on a dark background (digits, MNIST), so `lab explain --input` inverts a drawing on paper
    brightness: float | None = None
    extras: dict = field(default_factory=dict)

    @property
    def supervised(self) -> bool:
        """Whether the training split has targets."""
        if not is_lazy(self.train):
            return self.train.y is not None
        return _item_target(self.train[0]) is not None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input."""
        if not is_lazy(self.train):
            return tuple(self.train.x.shape[1:])
        return tuple(np.shape(_as_numpy(_item_input(self.train[0]))))

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    def split(self, name: str) -> Split | Any:
        """The split called `name` ("train", "val" or "test")."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"no split {name!r}: use train, val or test")
        s = getattr(self, name)
        if s is None:
            raise ValueError(f"this dataset has no {name} split")
        return s

    def sample(self, split: str = "test", n: int | None = None, seed: int | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """(inputs, targets or None) of up to `n` items of a split, as numpy arrays.

        The first `n` items, or `n` items drawn without replacement when `seed` is given.
        `n=None` means the whole split when it is in memory and `SAMPLE_LIMIT` items when it is
        lazy, so explanations read a few items of a large dataset, never all of it. Inputs
        that are strings (a text corpus) come back as a 1-D object array.
        """
        s = self.split(split)
        total = len(s)
        if n is None:
            n = total if not is_lazy(s) else min(total, SAMPLE_LIMIT)
        n = max(0, min(int(n), total))
        if seed is None:
            idx = np.arange(n)
        else:
            idx = np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
        if not is_lazy(s):
            x = s.x[torch.from_numpy(idx)].cpu().numpy()
            y = None if s.y is None else s.y[torch.from_numpy(idx)].cpu().numpy()
            return x, y
        items = [s[int(i)] for i in idx]
        x = _stack([_item_input(it) for it in items])
        targets = [_item_target(it) for it in items]
        y = None if not items or targets[0] is None else _stack(targets)
        return x, y


def _item_input(item: Any) -> Any:
    """The input of one dataset item: `x` of `(x, y)`, or the item itself."""
    return item[0] if isinstance(item, (tuple, list)) else item


def _item_target(item: Any) -> Any:
    return item[1] if isinstance(item, (tuple, list)) and len(item) > 1 else None


def _as_numpy(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    if isinstance(v, (str, bytes)):
        return v
    return np.asarray(v)  # numpy arrays, numbers, PIL images


def _stack(values: list[Any]) -> np.ndarray:
    """One array of items: stacked when numeric, a 1-D object array of strings otherwise."""
    if values and isinstance(values[0], (str, bytes)):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.stack([_as_numpy(v) for v in values]) if values else np.empty((0,))


def to_device(batch: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """`batch` with every tensor in it on `device`, its structure kept (tuple, list, namedtuple,
    dict, PackedSequence). Anything else (ints, strings, a list of lengths) is left as it is.

    Lengths for `pack_padded_sequence` may be a tensor (it is moved; torch copies it back to
    the CPU itself) or, to avoid that copy, a plain list of ints, which stays untouched.

    >>> x, lengths, y = to_device((x, lengths, y), "cuda")
    """
    if isinstance(batch, torch.Tensor):
        if batch.device == device:  # already there (TensorLoader): skip the call's overhead
            return batch
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, PackedSequence):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return type(batch)((k, to_device(v, device, non_blocking)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


class TensorLoader:
    """Batches of an in-memory split, shuffled by a seeded permutation, already on `device`.

    `set_epoch(e)` reseeds the shuffle, so a resumed run sees the same batches in the same order
    as an uninterrupted one. Yields `(x, y)`, or `x` alone for an unlabelled split.
    """

    def __init__(self, split: Split, batch_size: int, *, device: torch.device | str = "cpu",
                 shuffle: bool = True, seed: int = 0):
        self.split = split.to(device)
        self.batch_size = max(1, int(batch_size))
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.split)
        x, y = self.split.x, self.split.y
        if self.shuffle:
            g = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
            order = torch.randperm(n, generator=g).to(x.device)
            # one gather per epoch instead of one per batch; index_select, not x[order]: the
            # same rows, a quarter of advanced indexing's cost on the CPU
            x = x.index_select(0, order)
            y = None if y is None else y.index_select(0, order)
        for i in range(0, n, self.batch_size):
            if y is None:
                yield x[i:i + self.batch_size]
            else:
                yield x[i:i + self.batch_size], y[i:i + self.batch_size]


class SeededLoader:
    """A `DataLoader` over a lazy dataset whose shuffle depends only on (seed, epoch).

    The loader's generator is reseeded at the start of every pass, so epoch e draws the same
    order (and the same worker seeds) in a resumed run as in an uninterrupted one. Batches come
    back on `device` (pinned host memory first when it is a GPU).
    """

    def __init__(self, dataset: Any, batch_size: int, *, device: torch.device | str = "cpu",
                 shuffle: bool = True, seed: int = 0, collate_fn: Callable | None = None,
                 num_workers: int = 0):
        from torch.utils.data import DataLoader

        self.device = torch.device(device)
        self.seed = seed
        self.epoch = 0
        self.generator = torch.Generator()
        self.loader = DataLoader(dataset, batch_size=max(1, int(batch_size)), shuffle=shuffle,
                                 collate_fn=collate_fn, num_workers=num_workers,
                                 generator=self.generator,
                                 pin_memory=self.device.type == "cuda")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.generator.manual_seed(_epoch_seed(self.seed, self.epoch))
        cuda = self.device.type == "cuda"
        for batch in self.loader:
            yield to_device(batch, self.device, non_blocking=cuda)


def make_loader(split: Split | Any, batch_size: int, *, device: torch.device | str = "cpu",
                shuffle: bool = True, seed: int = 0, collate_fn: Callable | None = None
                ) -> TensorLoader | SeededLoader:
    """Batches of a split for the trainer: an iterable with `set_epoch(epoch)` and `len()`.

    In-memory `Split`s get a `TensorLoader`, lazy datasets a `SeededLoader`; both reshuffle by
    (seed, epoch) when `shuffle`, and keep the split's order otherwise (evaluation).
    `collate_fn` (lazy splits only) builds a batch from items, e.g. padding sequences.
    """
    if not is_lazy(split):
        if collate_fn is not None:
            raise ValueError("collate_fn applies to lazy datasets; an in-memory Split is "
                             "batched by slicing its tensors")
        return TensorLoader(split, batch_size, device=device, shuffle=shuffle, seed=seed)
    return SeededLoader(split, batch_size, device=device, shuffle=shuffle, seed=seed,
                        collate_fn=collate_fn)


def for_eval(split: Split | Any, batch_size: int, *, device: torch.device | str = "cpu",
             collate_fn: Callable | None = None) -> Split | SeededLoader:
    """What `Trainer.evaluate` takes for a split: an in-memory `Split` as it is (evaluated in
    large batches on the device), a lazy dataset as an unshuffled `SeededLoader`."""
    if not is_lazy(split):
        return split
    return SeededLoader(split, batch_size, device=device, shuffle=False, collate_fn=collate_fn)
