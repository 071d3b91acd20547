"""Datasets that need no network: shipped with scikit-learn or generated.

Every loader returns a `labs.data.Dataset` with float32 inputs, int64 class targets (float32
regression targets, or none for unlabelled data) and the metadata explanations and plots use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from labs.data import Dataset, Split

GATES = {
    "AND": (0, 0, 0, 1),
    "OR": (0, 1, 1, 1),
    "NAND": (1, 1, 1, 0),
    "NOR": (1, 0, 0, 0),
    "XOR": (0, 1, 1, 0),
    "XNOR": (1, 0, 0, 1),
}


def from_arrays(x: np.ndarray, y: np.ndarray | None = None, *, test_size: float = 0.2,
                val_size: float = 0.0, scale: bool = True, seed: int = 0,
                classification: bool = True, feature_names: Sequence[str] | None = None,
                class_names: Sequence[str] | None = None,
                image_shape: tuple[int, ...] | None = None, pixel_max: float = 1.0) -> Dataset:
    """Split arrays, standardize the inputs with the training statistics, wrap as a `Dataset`.

    `y=None` is unlabelled data (autoencoders, clustering): the splits are `Split(x)` and
    `Dataset.supervised` is False. Classification splits are stratified.
    `scale=True` standardizes the inputs `x` only, with the training split's per-feature mean
    and standard deviation; targets are never touched (regression targets keep their units).
    """
    from sklearn.model_selection import train_test_split

    x = np.asarray(x, dtype=np.float32)
    y = None if y is None else np.asarray(y)
    classification = classification and y is not None
    parts = (x,) if y is None else (x, y)

    def cut(arrays, size):
        strat = arrays[1] if classification else None
        out = train_test_split(*arrays, test_size=size, random_state=seed, stratify=strat)
        return out[0::2], out[1::2]  # (first part of each array), (second part of each)

    train, test = cut(parts, test_size)
    val = None
    if val_size > 0:
        train, val = cut(train, val_size / (1 - test_size))
    x_tr = train[0]
    mean = x_tr.mean(axis=0) if scale else np.zeros(x.shape[1:], np.float32)
    std = x_tr.std(axis=0) if scale else np.ones(x.shape[1:], np.float32)
    std = np.where(std < 1e-8, 1.0, std).astype(np.float32)  # constant pixels stay constant

    def split(arrays):
        xt = torch.from_numpy(((arrays[0] - mean) / std).astype(np.float32))
        if y is None:
            return Split(xt)
        yt = torch.from_numpy(arrays[1].astype(np.int64 if classification else np.float32))
        return Split(xt, yt)

    n_classes = int(y.max()) + 1 if classification else 0
    display = None
    brightness = None
    if image_shape is not None:
        m, s = mean.reshape(image_shape), std.reshape(image_shape)
        brightness = float(x_tr.mean() / pixel_max) if pixel_max else None

        def display(img: np.ndarray) -> np.ndarray:
            return np.asarray(img).reshape(image_shape) * s + m

    def encode(raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float32).reshape(x.shape[1:])
        return ((raw - mean) / std).astype(np.float32)

    return Dataset(
        train=split(train), test=split(test), encode=encode, pixel_max=pixel_max,
        val=split(val) if val is not None else None,
        n_classes=n_classes, feature_names=feature_names,
        class_names=class_names or ([str(c) for c in range(n_classes)] if n_classes else None),
        image_shape=image_shape, display=display, brightness=brightness,
        extras={"mean": mean, "std": std},
    )


def digits(*, test_size: float = 0.2, val_size: float = 0.0, scale: bool | str = True,
           seed: int = 0, size: int = 8) -> Dataset:
    """scikit-learn's 1,797 8x8 handwritten digits (ships with scikit-learn: no download).

    Pixels come as flat 64-vectors: standardized per pixel (`scale=True`, for dense nets),
    raw 0..16 (`False`), or divided by 16 into [0, 1] (`"unit"`, for convolutions: every
    pixel on one scale and the background 0, so a shifted or padded image stays a digit).
    `size` > 8 upsamples every digit to size x size (bilinear, `labs.images.upsample`), for
    networks built for larger inputs (LeNet-5's 32x32).
    """
    from sklearn.datasets import load_digits

    if scale not in (True, False, "unit"):
        raise ValueError(f"digits(scale=...) takes True, False or 'unit', not {scale!r}")
    d = load_digits()
    unit = scale == "unit"
    x = d.data / 16.0 if unit else d.data
    if size != 8:
        from labs.images import upsample

        x = upsample(torch.from_numpy(x).float(), size, image_shape=(8, 8)).numpy()
    return from_arrays(x, d.target, test_size=test_size,
                       val_size=val_size, scale=scale is True, seed=seed, image_shape=(size, size),
                       pixel_max=1.0 if unit else 16.0,
                       feature_names=[f"px{r}{c}" if size <= 10 else f"px{r}_{c}"
                                      for r in range(size) for c in range(size)])


def vision(name: str, data_dir: str, **kwargs) -> Dataset:
    """MNIST, Fashion-MNIST or CIFAR-10 from `data_dir` (torchvision's files; downloaded when
    possible): `labs.vision_data.load`, imported only when asked for."""
    from labs import vision_data

    return vision_data.load(name, data_dir, **kwargs)


def logic_gate(name: str) -> Dataset:
    """The four rows of a 2-input truth table; train and test are the same four rows."""
    name = name.upper()
    if name not in GATES:
        from labs.errors import ConfigError

        raise ConfigError(f"unknown gate '{name}'; choose from {', '.join(GATES)}")
    x = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float32)
    y = torch.tensor(GATES[name], dtype=torch.int64)
    return Dataset(train=Split(x, y), test=Split(x, y), n_classes=2,
                   encode=lambda raw: np.asarray(raw, dtype=np.float32).reshape(2),
                   feature_names=["x1", "x2"], class_names=["0", "1"], extras={"gate": name})
