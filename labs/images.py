"""Image helpers the image labs share: pixel shifts, for augmentation and for shift tests.

Inputs may be flat (`(n, H*W)`, as the digits come) or shaped (`(n, H, W)`, `(n, C, H, W)`):
pass `image_shape` for flat ones; the result has the input's shape. Pixels shifted in from
outside the image take the value `fill` (0: the digits' background when pixels are in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def shift(x: torch.Tensor, dy: int, dx: int, image_shape: tuple[int, ...] | None = None,
          fill: float = 0.0) -> torch.Tensor:
    """Every image of the batch `x` moved `dy` pixels down and `dx` right (negative: up, left).

    >>> shift(digits, 0, 2, image_shape=(8, 8))  # each digit two pixels to the right
    """
    img = _as_images(x, image_shape)
    h, w = img.shape[-2:]
    out = torch.full_like(img, fill)
    if abs(dy) < h and abs(dx) < w:
        out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            img[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out.reshape(x.shape)


def random_shift(x: torch.Tensor, max_shift: int = 1, image_shape: tuple[int, ...] | None = None,
                 fill: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image moved by its own random (dy, dx), both uniform in [-max_shift, max_shift].

    Draws from torch's global generator unless given one (the framework seeds it and a resumed
    run restores it), on `x`'s device.
    """
    if max_shift <= 0:
        return x
    img = _as_images(x, image_shape)
    k = 2 * max_shift + 1
    offsets = torch.randint(0, k * k, (len(img),), generator=generator,
                            device="cpu" if generator is not None else x.device).to(x.device)
    out = torch.empty_like(img)
    for code in range(k * k):  # one copy per distinct shift: k*k vectorized ops, not n
        rows = offsets == code
        dy, dx = code // k - max_shift, code % k - max_shift
        out[rows] = shift(img[rows], dy, dx, fill=fill)
    return out.reshape(x.shape)


def random_shifts(max_shift: int = 1, image_shape: tuple[int, ...] | None = None,
                  fill: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """`random_shift` with its settings bound: a transform for `augmented_step`.

    >>> run.fit(model, data, step=augmented_step(images.random_shifts(1, (8, 8))))
    """
    return lambda x: random_shift(x, max_shift, image_shape, fill)


def _as_images(x: torch.Tensor, image_shape: tuple[int, ...] | None) -> torch.Tensor:
    if image_shape is not None:
        return x.reshape(len(x), *image_shape)
    if x.ndim < 3:
        raise ValueError(f"a batch of shape {tuple(x.shape)} is not images: pass image_shape")
    return x


def upsample(x: torch.Tensor, size: int | tuple[int, int],
             image_shape: tuple[int, ...] | None = None, mode: str = "bilinear") -> torch.Tensor:
    """Every image of the batch `x` resized to `size` (an int: square), by `mode` interpolation
    ("bilinear", "nearest", "bicubic"; "area" to shrink). Flat in (pass `image_shape`), flat out.

    >>> upsample(digits, 32, image_shape=(8, 8)).shape  # (n, 1024): the digits at LeNet's size
    """
    import torch.nn.functional as F

    img = _as_images(x, image_shape)
    lead = img.shape[:-2]
    hw = (size, size) if isinstance(size, int) else tuple(size)
    batch = img.reshape(-1, 1, *img.shape[-2:]).float()  # every channel on its own
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(batch, size=hw, mode=mode, **kw).reshape(*lead, *hw)
    return out.reshape(len(x), -1) if image_shape is not None else out


def per_class_accuracy(y_true, y_pred, n_classes: int | None = None):
    """Accuracy on each class (recall): a numpy array, NaN for a class with no examples."""
    import numpy as np

    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    n = n_classes if n_classes is not None else int(max(y_true.max(), y_pred.max())) + 1
    hits = np.bincount(y_true[y_true == y_pred], minlength=n)[:n].astype(float)
    counts = np.bincount(y_true, minlength=n)[:n].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
