"""Segmentations for the image explainer: which pixels LIME switches on and off together.

LIME's default (quickshift) is tuned for photos: on an 8x8 digit it returns ONE segment, so
every perturbation is "all on" or "all off" and the explanation says nothing. Tiny images get a
grid of square pixel blocks instead; larger ones get SLIC superpixels. Every function returns an
(H, W) int map with labels 0..n-1 (LIME's sampler assumes contiguous labels from 0).
"""

from __future__ import annotations

import numpy as np

from explain.errors import ExplainError

METHODS = ("auto", "grid", "slic", "quickshift")
TINY = 32  # images whose shorter side is below this get the grid segmenter under "auto"


def auto_block(height: int, width: int) -> int:
    """Block side for the grid segmenter.

    2x2 blocks up to 16 px (8x8 digits -> 16 segments: a stroke is 1-2 px wide, and 16 features
    leave ~60 perturbations per feature at 1000 samples, so the ridge fit is stable), 4x4
    blocks above (28x28 -> 49 segments). Never more than half the shorter side.
    """
    side = min(height, width)
    block = 2 if side <= 16 else 4
    return max(1, min(block, side // 2))


def grid_segments(height: int, width: int, block: int) -> np.ndarray:
    """(H, W) map of block x block squares, numbered row by row; edge blocks may be smaller."""
    if block < 1:
        raise ExplainError(f"grid block must be >= 1 pixel, got {block}")
    rows = np.arange(height) // block
    cols = np.arange(width) // block
    n_cols = -(-width // block)
    return (rows[:, None] * n_cols + cols[None, :]).astype(np.int64)


def relabel(segments: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..n-1 in order of first value."""
    _, inverse = np.unique(segments, return_inverse=True)
    return inverse.reshape(segments.shape).astype(np.int64)


def to_unit_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) -> (H, W, 3) float in [0, 1] (min-max), for segmenters
    that assume a colour range (SLIC's Lab conversion; quickshift fails on one channel)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def segment(image: np.ndarray, method: str = "auto", *, block: int | None = None,
            n_segments: int = 50, compactness: float = 10.0, sigma: float = 1.0,
            seed: int = 0) -> np.ndarray:
    """Segment one image ((H, W) or (H, W, C), any value range) into an (H, W) label map.

    auto: grid for images whose shorter side is < 32 px, SLIC otherwise. SLIC smooths with
    `sigma` first: on noisy inputs unsmoothed SLIC makes speckle that its connectivity step
    merges into ONE segment. Should SLIC/quickshift still return a single segment, a grid of
    about n_segments blocks is used instead (one segment explains nothing).
    """
    img = np.asarray(image)
    height, width = img.shape[:2]
    if method == "auto":
        method = "grid" if min(height, width) < TINY else "slic"
    if method == "grid":
        return grid_segments(height, width, block or auto_block(height, width))
    if method == "slic":
        from skimage.segmentation import slic

        # start_label=0: LIME's sampler indexes segments from 0.
        seg = slic(to_unit_rgb(img), n_segments=n_segments, compactness=compactness,
                   sigma=sigma, start_label=0, channel_axis=-1)
    elif method == "quickshift":
        from skimage.segmentation import quickshift

        # Always 3 channels: quickshift fails on (H, W, 1). lime's default parameters.
        seg = quickshift(to_unit_rgb(img), kernel_size=4, max_dist=200, ratio=0.2, rng=seed)
    else:
        raise ExplainError(f"unknown segmentation {method!r}; use one of {', '.join(METHODS)} "
                       f"or a function image -> (H, W) label map")
    if len(np.unique(seg)) < 2:
        side = max(1, round(float(np.sqrt(height * width / max(n_segments, 1)))))
        return grid_segments(height, width, side)
    return relabel(seg)
