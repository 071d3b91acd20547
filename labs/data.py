"""In-memory datasets and the loader that batches them straight from tensors on the device.

Small datasets (digits, gates, tabular data) fit in memory: moving them to the device once and
slicing them with a seeded permutation is several times faster than a per-sample `DataLoader`
(see benchmarks/bench_trainer.py). Larger datasets pass any iterable of (x, y) batches, e.g. a
`torch.utils.data.DataLoader`, to the trainer instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Split:
    """Inputs and targets of one split, as tensors."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Dataset:
    """Train / validation / test splits plus what explanations and plots need to know."""

    train: Split
    test: Split
    val: Split | None = None
    n_classes: int = 0  # 0 for regression
    feature_names: Sequence[str] | None = None
    class_names: Sequence[str] | None = None
    image_shape: tuple[int, ...] | None = None  # how one sample looks as an image
    # maps one sample (reshaped to image_shape) back to something imshow can show
    display: Callable[[np.ndarray], np.ndarray] | None = None
    # maps raw feature values (a CSV row; an image file's pixels scaled to [0, pixel_max]) to
    # model inputs, so `lab explain --input FILE` explains what the model really sees
    encode: Callable[[np.ndarray], np.ndarray] | None = None
    pixel_max: float = 1.0
    extras: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(np.prod(self.train.x.shape[1:]))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


class TensorLoader:
    """Batches of an in-memory split, shuffled by a seeded permutation, already on `device`.

    `set_epoch(e)` reseeds the shuffle, so a resumed run sees the same batches in the same order
    as an uninterrupted one.
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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        x, y = self.split.x, self.split.y
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g).to(x.device)
            x, y = x[order], y[order]  # one gather per epoch instead of one per batch
        for i in range(0, n, self.batch_size):
            yield x[i:i + self.batch_size], y[i:i + self.batch_size]
