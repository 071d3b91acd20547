"""Pieces the generative labs share: unlabelled [0, 1] images (the 8x8 digits, or MNIST /
Fashion-MNIST through the supervised labs' loader), and figures of square grey images of any
side (taken from the length of the flat vectors)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from labs import Dataset, ImageOptions, Split, SplitConfig, datasets, image_options

SIDE = 8  # the digits are 8x8
DATASETS = ("digits", "mnist", "fashion-mnist")  # grey, square: what these labs can draw


def digits01(*, test_size: float, val_size: float, seed: int,
             binarize: bool = False) -> Dataset:
    """scikit-learn's 8x8 digits as unlabelled data in [0, 1] (pixel / 16), or {0, 1} with
    `binarize` (pixel >= 8), split stratified by digit.

    Batches are images alone (`data.supervised` is False); the digits stay aside in
    `data.extras["labels"]["train" | "val" | "test"]` to colour the latent plots.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data / 16.0
    if binarize:
        x = (x >= 0.5).astype(np.float32)
    # the labelled split keeps labels aligned with the rows (`from_arrays(x, None)` shuffles
    # without telling which rows went where); then the labels are taken off the splits
    lab = datasets.from_arrays(x, d.target, test_size=test_size, val_size=val_size,
                               scale=False, seed=seed, image_shape=(SIDE, SIDE), pixel_max=1.0)
    labels = {name: s.y.numpy() for name in ("train", "val", "test")
              if (s := getattr(lab, name)) is not None}
    return dataclasses.replace(
        lab, train=Split(lab.train.x), test=Split(lab.test.x),
        val=None if lab.val is None else Split(lab.val.x), n_classes=0, class_names=None,
        extras={**lab.extras, "labels": labels, "binary": binarize})


class GreyImages(ImageOptions):
    """The generative labs' load call, on a config with `image_options(DATASETS)`'s keys."""

    def images(self, binarize: bool = False) -> Dataset:
        """The configured data set as unlabelled [0, 1] images (`images01`), `val_size` of
        them held out where the config has one."""
        return images01(self.dataset, data_dir=self.data_dir, download=self.download,
                        test_size=self.test_size, val_size=getattr(self, "val_size", 0.0),
                        seed=self.seed, binarize=binarize)


@dataclasses.dataclass
class ImageDataConfig(GreyImages, image_options(DATASETS), SplitConfig):
    """The data options the autoencoder labs and the VAE share: which grey images, from where
    (`dataset`, `data_dir`, `download`), and the splits."""


def images01(dataset: str, *, data_dir: str = "data", download: bool = True,
             test_size: float, val_size: float, seed: int, binarize: bool = False) -> Dataset:
    """Unlabelled grey images in [0, 1] (or {0, 1} with `binarize`: pixel >= half), like
    `digits01`: "digits" is `digits01` itself; "mnist" / "fashion-mnist" come through
    `labs.datasets.vision` (the supervised labs' loader: its files, its one-line error when
    they are absent), with their official test split (`test_size` unused) and `val_size` of
    the training images held out. The classes stay aside in `data.extras["labels"]`."""
    if dataset == "digits":
        return digits01(test_size=test_size, val_size=val_size, seed=seed, binarize=binarize)
    if dataset not in DATASETS:
        from labs import ConfigError

        raise ConfigError(f"unknown data set '{dataset}' for a generative lab; choose from "
                          f"{', '.join(DATASETS)}")
    data = datasets.vision(dataset, data_dir, val_size=val_size, scale="unit", seed=seed,
                           download=download)

    def strip(s: Split | None) -> Split | None:
        if s is None:
            return None
        return Split((s.x >= 0.5).float() if binarize else s.x)

    labels = {name: s.y.numpy() for name in ("train", "val", "test")
              if (s := getattr(data, name)) is not None}
    return dataclasses.replace(
        data, train=strip(data.train), test=strip(data.test), val=strip(data.val),
        n_classes=0, class_names=None,
        extras={**data.extras, "labels": labels, "binary": binarize,
                "class_names": list(data.class_names or ())})


def side(x: Any) -> int:
    """The side of the square images whose flat vectors are `x`'s last axis (or of a
    `Dataset`'s images)."""
    if hasattr(x, "image_shape") and x.image_shape:
        return int(x.image_shape[0])
    n = int(x.shape[-1]) if hasattr(x, "shape") else len(x)
    s = math.isqrt(n)
    if s * s != n:
        raise ValueError(f"{n} pixels are not a square grey image")
    return s


def images(x: Any) -> list[np.ndarray]:
    """Flat vectors of s*s pixels (tensor or array; 64 for the digits) as a list of s x s
    arrays."""
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if a.ndim >= 3 and a.shape[-1] == a.shape[-2]:  # already images
        return list(a.reshape(-1, a.shape[-1], a.shape[-1]))
    s = side(a)
    return list(a.reshape(-1, s, s))


def grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[Sequence[str]] = (),
         title: str = "") -> Any:
    """Rows of images, one figure row each (grey levels fixed to [0, 1])."""
    from matplotlib.figure import Figure

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig = Figure(figsize=(1.05 * n_cols, 1.15 * n_rows + (0.4 if title else 0)),
                 layout="constrained")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            ax = fig.add_subplot(n_rows, n_cols, r * n_cols + c + 1)
            img = np.asarray(img)
            s = img.shape[0] if img.ndim == 2 else side(img)
            ax.imshow(img.reshape(s, s), cmap="gray_r", vmin=0, vmax=1)
            ax.set_axis_off()
            if titles and r < len(titles) and c < len(titles[r]) and titles[r][c]:
                ax.set_title(titles[r][c], fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def latent_scatter(codes: np.ndarray, labels: np.ndarray, title: str) -> Any:
    """The codes in 2-D (PCA of the codes when they have more dimensions), coloured by digit."""
    from matplotlib.figure import Figure

    codes = np.asarray(codes, dtype=np.float64)
    axes = ("z1", "z2")
    if codes.shape[1] > 2 and codes.std(axis=0).max() == 0:  # every unit dead: nothing to fit
        codes = codes[:, :2]
    elif codes.shape[1] > 2:
        from sklearn.decomposition import PCA

        pca = PCA(2).fit(codes)
        codes = pca.transform(codes)
        share = pca.explained_variance_ratio_.sum()
        axes = ("PC1 of the code", "PC2 of the code")
        title = f"{title} (PCA: {share:.0%} of the code's variance)"
    elif codes.shape[1] == 1:
        codes = np.hstack([codes, np.zeros_like(codes)])
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    ax = fig.add_subplot()
    sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5,
                    s=10, alpha=0.8)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title, fontsize=10)
    return fig


def tile(x: Any, cols: int = 8, scale: int = 4) -> np.ndarray:
    """Flat s*s-vectors in [0, 1] as one uint8 picture (dark ink on white), `cols` per row,
    each pixel `scale` x `scale` (1 for images larger than the digits, so a frame of MNIST
    stays small): a frame of an animation."""
    imgs = np.clip(np.stack(images(x)), 0, 1)
    s = imgs.shape[-1]
    if s > SIDE:
        scale = 1
    rows = -(-len(imgs) // cols)
    canvas = np.zeros((rows * (s + 1) + 1, cols * (s + 1) + 1))
    for i, img in enumerate(imgs):
        r, c = divmod(i, cols)
        canvas[1 + r * (s + 1):1 + r * (s + 1) + s,
               1 + c * (s + 1):1 + c * (s + 1) + s] = img
    return (255 * (1 - np.kron(canvas, np.ones((scale, scale))))).astype(np.uint8)


def write_gif(frames: Sequence[np.ndarray], path: Any, fps: int = 4) -> Any:
    """Grey uint8 frames as a looping GIF at `path` (parent folders made)."""
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pics = [Image.fromarray(f) for f in frames]
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=int(1000 / fps), loop=0)
    return path


def rebuild(model: Any, x: Any) -> Any:
    """An autoencoder's outputs for `x`, in eval mode without gradients, on the CPU (the
    model's own mode is restored)."""
    import torch

    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x.to(dev)).float().cpu()
    finally:
        model.train(was)
