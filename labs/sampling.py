"""`lab sample <run>`: new samples from a saved generative run, without retraining.

The lab draws them (`Lab.sample`); this module reloads the run and writes them as one PNG grid
into `<run>/samples/`, a new file per call (the seed in its name), never over an earlier one.
"""

from __future__ import annotations

import math
import secrets
import time
from pathlib import Path

import numpy as np

from labs.errors import LabError


def sample_saved(ref: str, *, n: int = 64, seed: int | None = None,
                 runs_dir: str | Path | None = None) -> Path:
    """Reload the run `ref`, draw `n` samples with `seed` (a fresh one when None), write the
    grid; returns its path."""
    from labs.lab import Lab
    from labs.reload import find_run, restore

    lab_cls, meta, path = find_run(ref, runs_dir)
    if lab_cls.sample is Lab.sample:  # say so before loading any data or weights
        Lab.sample(lab_cls(), None, {}, n, 0)
    seed = secrets.randbelow(2**31) if seed is None else seed
    r = restore(lab_cls, meta, path)
    imgs = np.asarray(r.lab.sample(r.cfg, r.models, n, seed), dtype=np.float64)
    if imgs.ndim not in (3, 4) or len(imgs) != n:
        raise TypeError(f"{lab_cls.__name__}.sample returned shape {imgs.shape}; expected "
                        f"({n}, H, W) or ({n}, H, W, C)")
    out = path / "samples" / time.strftime(f"sample-%Y%m%d-%H%M%S-seed{seed}.png")
    while out.exists():
        out = out.with_name(out.stem + "x.png")
    write_grid(imgs, out)
    return out


def write_grid(imgs: np.ndarray, path: Path, tile: int = 32) -> Path:
    """Images in [0, 1] as one PNG: a near-square grid, each image scaled to about `tile`
    pixels a side (nearest neighbour, so small digits stay crisp), 2-pixel white gutters."""
    from PIL import Image

    imgs = np.clip(imgs, 0, 1)
    if imgs.ndim == 3:
        imgs = imgs[..., None]
    n, h, w, c = imgs.shape
    scale = max(1, tile // max(h, w))
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    gap = 2
    canvas = np.ones((rows * (h * scale + gap) + gap, cols * (w * scale + gap) + gap, c))
    for i, img in enumerate(imgs):
        r, k = divmod(i, cols)
        y, x = gap + r * (h * scale + gap), gap + k * (w * scale + gap)
        canvas[y:y + h * scale, x:x + w * scale] = np.kron(img, np.ones((scale, scale, 1)))
    pixels = (255 * canvas).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise LabError(f"{path} exists: samples are never overwritten")
    Image.fromarray(pixels[..., 0] if c == 1 else pixels).save(path)
    return path
