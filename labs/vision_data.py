"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's dataset classes, when the files are
there (or downloadable); otherwise one sentence saying where to put which files.

The images are read once into memory as flat float32 rows (MNIST 28*28, CIFAR-10 32*32*3 in
(H, W, C) order, as the files store them), so the trainer batches them with its fast tensor
loader, and the digits' conventions hold: `image_shape` is (28, 28) or (32, 32, 3), pixels are
in [0, 1] (`scale="unit"`) or standardized per pixel with the training statistics (`True`).

    data = vision_data.load("mnist", "~/data", val_size=0.1, scale="unit")

A lab that trains on these sets (or the 8x8 digits) declares its `dataset`, `data_dir` and
`download` keys with `image_options`, one definition for every such lab.

torchvision is imported only here, when a lab asks for one of these sets.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labs.config import option
from labs.data import Dataset, Split
from labs.errors import DataNotFound


@dataclass(frozen=True)
class Spec:
    cls: str  # torchvision.datasets class
    folder: str  # where torchvision looks under data_dir
    files: tuple[str, ...]
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    source: str  # what to fetch by hand


_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte")
SETS = {
    "mnist": Spec("MNIST", "MNIST/raw", _IDX, (28, 28), tuple(str(d) for d in range(10)),
                  "the four MNIST .gz files, unzipped"),
    "fashion-mnist": Spec("FashionMNIST", "FashionMNIST/raw", _IDX, (28, 28),
                          ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                           "Shirt", "Sneaker", "Bag", "Ankle boot"),
                          "the four Fashion-MNIST .gz files, unzipped"),
    "cifar10": Spec("CIFAR10", "cifar-10-batches-py",
                    ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                     "data_batch_5", "test_batch", "batches.meta"), (32, 32, 3),
                    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                     "ship", "truck"),
                    "cifar-10-python.tar.gz, extracted"),
}
NAMES = tuple(SETS)
DIGITS = "digits"  # scikit-learn's 8x8 digits: ship with it, no download
CHOICES = (DIGITS, *NAMES)


def missing_message(name: str, data_dir: str | Path, reason: str = "") -> str:
    """The one line a user gets when a set is absent: which files, in which folder."""
    spec = SETS[name]
    where = Path(data_dir).expanduser() / spec.folder
    why = f" ({reason})" if reason else ""
    return (f"{name} not found in {Path(data_dir).expanduser()}{why}: put {spec.source} "
            f"({', '.join(spec.files)}) in {where}/, or pass --set data_dir=<folder holding "
            f"{spec.folder.split('/')[0]}/>")


def _open(name: str, data_dir: Path, train: bool, download: bool):
    """torchvision's dataset object; DataNotFound when the files are absent and a download is
    not allowed or fails (no network)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, SETS[name].cls)
    try:
        return cls(str(data_dir), train=train, download=False)
    except RuntimeError as absent:  # torchvision: "Dataset not found ..."
        if not download:
            raise DataNotFound(missing_message(name, data_dir, "download=false")) from None
        try:
            return cls(str(data_dir), train=train, download=True)
        except Exception as e:  # no network, a refused mirror, a corrupt archive
            reason = f"download failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}" \
                if str(e) else f"download failed: {type(e).__name__}"
            raise DataNotFound(missing_message(name, data_dir, reason)) from absent


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    """(flat uint8 images, int64 labels) of a torchvision MNIST-like or CIFAR dataset."""
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    targets = ds.targets.numpy() if isinstance(ds.targets, torch.Tensor) else ds.targets
    return data.reshape(len(data), -1), np.asarray(targets, dtype=np.int64)


def load(name: str, data_dir: str | Path, *, val_size: float = 0.0, scale: bool | str = "unit",
         seed: int = 0, download: bool = True, limit: int | None = None) -> Dataset:
    """The set's official train / test split as a `Dataset`; `val_size` of the training images
    (a seeded random draw) held out for validation; `limit` keeps the first `limit` images of
    each split (quick runs)."""
    if name not in SETS:
        from labs.errors import ConfigError

        raise ConfigError(f"unknown image data set '{name}'; choose from {', '.join(SETS)}")
    if scale not in (True, False, "unit"):
        raise ValueError(f"scale must be True, False or 'unit', not {scale!r}")
    spec = SETS[name]
    root = Path(data_dir).expanduser()
    x_tr, y_tr = _arrays(_open(name, root, True, download))
    x_te, y_te = _arrays(_open(name, root, False, download))
    if limit:
        x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]
    val = None
    if val_size > 0:
        order = np.random.default_rng(seed).permutation(len(x_tr))
        n_val = max(1, int(round(val_size * len(x_tr))))
        val = (x_tr[order[:n_val]], y_tr[order[:n_val]])
        x_tr, y_tr = x_tr[order[n_val:]], y_tr[order[n_val:]]
    unit = x_tr.astype(np.float32) / 255.0
    if scale is True:
        mean, std = unit.mean(0), unit.std(0)
        std = np.where(std < 1e-8, 1.0, std).astype(np.float32)
    else:
        mean, std = np.zeros(unit.shape[1], np.float32), np.ones(unit.shape[1], np.float32)
    factor = 1.0 if scale is False else 1 / 255.0  # raw: 0..255

    def prep(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((x.astype(np.float32) * factor - (mean if scale is True else 0))
                                 / (std if scale is True else 1)).astype(np.float32))

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(prep(x), torch.from_numpy(y))

    shape = spec.image_shape
    m, s = mean.reshape(shape), std.reshape(shape)

    def display(img: np.ndarray) -> np.ndarray:
        out = np.asarray(img).reshape(shape)
        if scale is True:
            return np.clip(out * s + m, 0, 1)
        return out / 255.0 if scale is False else out

    def encode(raw: np.ndarray) -> np.ndarray:  # raw pixels scaled to [0, pixel_max]
        raw = np.asarray(raw, dtype=np.float32).reshape(-1)
        return ((raw - mean) / std).astype(np.float32) if scale is True else raw

    pixel_max = 255.0 if scale is False else 1.0
    return Dataset(train=split(x_tr, y_tr), test=split(x_te, y_te),
                   val=split(*val) if val is not None else None, n_classes=len(spec.class_names),
                   class_names=list(spec.class_names), image_shape=shape, display=display,
                   encode=encode, pixel_max=pixel_max,
                   brightness=float(unit.mean()), extras={"dataset": name, "mean": mean,
                                                          "std": std})


# -- the config keys -------------------------------------------------------------------------


class ImageOptions:
    """What a config made by `image_options` can do with its keys: load the chosen set."""

    dataset: str
    data_dir: str
    download: bool

    def load_images(self, *, scale: bool | str, val_size: float | None = None) -> Dataset:
        """The configured images with their labels: the digits split `test_size` / `val_size`
        (`labs.datasets.digits`), a torchvision set with its own test split and `val_size` of
        its training images held out (`load`), both drawn with the config's `seed`.
        `val_size` defaults to the config's (0 where it has none)."""
        val = getattr(self, "val_size", 0.0) if val_size is None else val_size
        if self.dataset == DIGITS:
            from labs.datasets import digits

            return digits(test_size=self.test_size, val_size=val, scale=scale, seed=self.seed)
        return load(self.dataset, self.data_dir, val_size=val, scale=scale, seed=self.seed,
                    download=self.download)


def image_options(choices: Sequence[str] = CHOICES, *, note: str = "") -> type[ImageOptions]:
    """A config base declaring `dataset` (one of `choices`, "digits" by default when it is
    one), `data_dir` and `download`, with their help and checks: the one definition of these
    keys. A family narrows `choices` (the generative labs draw grey squares: no cifar10);
    `note` adds its caveat to `dataset`'s help. Put it first among the bases (its keys then
    follow the base config's), and call it with the same arguments to get the same class:

        @dataclass
        class Config(image_options(), SplitConfig):
            hidden: list[int] = option([64], "hidden layer widths", min=1)

        data = cfg.load_images(scale=True)
    """
    return _options(tuple(choices), note)


@functools.cache
def _options(choices: tuple[str, ...], note: str) -> type[ImageOptions]:
    unknown = [c for c in choices if c not in CHOICES]
    if unknown or not set(choices) & set(NAMES):  # a lab's bug, not a user's value
        raise ValueError(f"image_options(): choose among {', '.join(NAMES)} (and {DIGITS}), "
                         f"not {choices}")

    @dataclass
    class Options(ImageOptions):
        dataset: str = option(DIGITS if DIGITS in choices else choices[0],
                              dataset_help(choices, note), choices=choices)
        data_dir: str = option("data", f"folder holding {_folders(choices)} (downloaded there "
                                       "when possible)")
        download: bool = option(True, "try to download a missing data set (needs the network)")

    Options.__name__ = Options.__qualname__ = f"ImageOptions[{'|'.join(choices)}]"
    return Options


def dataset_help(choices: Sequence[str], note: str = "") -> str:
    """`dataset`'s help for `choices`: what each set is and where it comes from, e.g. "digits:
    scikit-learn's 8x8 (no download); mnist / fashion-mnist (28x28): read from data_dir with
    torchvision (their own test split: test_size is not used)"."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for name in choices:
        if name in SETS:
            groups.setdefault(SETS[name].image_shape, []).append(name)
    sets = ", ".join(f"{' / '.join(names)} ({'x'.join(map(str, shape))})"
                     for shape, names in groups.items())
    caveats = "; ".join(["their own test split: test_size is not used", *filter(None, [note])])
    head = "digits: scikit-learn's 8x8 (no download); " if DIGITS in choices else ""
    return f"{head}{sets}: read from data_dir with torchvision ({caveats})"


def _folders(choices: Sequence[str]) -> str:
    """"MNIST/, FashionMNIST/ or cifar-10-batches-py/": the folders `load` reads under
    data_dir."""
    folders = [SETS[n].folder.split("/")[0] + "/" for n in choices if n in SETS]
    return " or ".join(filter(None, [", ".join(folders[:-1]), folders[-1]]))
