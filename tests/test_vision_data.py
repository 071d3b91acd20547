"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's classes, on tiny files written here
in the real formats (IDX ubyte; CIFAR-10's pickled python batches), and the labs on them."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from labs import DataNotFound, run
from labs import vision_data as vd


def write_idx(folder: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Path:
    """The four MNIST files (IDX: big-endian magic 0x0803 / 0x0801, the sizes, then bytes)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 50, (n, 28, 28), dtype=np.uint8)
        for i, k in enumerate(labels):  # a bright bar whose row says the class: learnable
            images[i, 2 + 2 * k, 4:24] = 255
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x0803, n, 28, 28) + images.tobytes())
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x0801, n) + labels.tobytes())
    return folder


def write_cifar(folder: Path, per_batch: int = 8, n_test: int = 10) -> Path:
    """CIFAR-10's python version: pickled dicts, images as rows of R, G, B planes (CHW)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def batch(n: int, first: int) -> dict:
        data = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        data[:, 0, 0, 0] = 200  # red of the top-left pixel
        data[:, 2, 0, 0] = 10  # blue of the top-left pixel
        return {"data": data.reshape(n, 3072), "labels": [(first + i) % 10 for i in range(n)]}

    for b in range(1, 6):
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump(batch(per_batch, b), f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(n_test, 0), f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(vd.SETS["cifar10"].class_names)}, f)
    return folder


@pytest.fixture
def cifar_files(tmp_path, monkeypatch):
    """Fake CIFAR-10 files; torchvision checks the real files' MD5 sums, which fake files
    cannot match, so only that check becomes "the file exists" (the parsing is torchvision's)."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    write_cifar(tmp_path / "data" / "cifar-10-batches-py")
    return tmp_path / "data"


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_files_load_through_torchvision(tmp_path, name, folder):
    write_idx(tmp_path / "data" / folder / "raw")
    data = vd.load(name, tmp_path / "data", val_size=0.25, seed=0, download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 20)
    assert data.image_shape == (28, 28) and data.input_shape == (784,)
    assert data.n_classes == 10 and len(data.class_names) == 10
    assert float(data.train.x.min()) >= 0 and float(data.train.x.max()) == 1.0  # unit scale
    img = data.display(data.test.x[3].numpy())  # the test image of class 3: its bar on row 8
    assert data.test.y[3] == 3 and img.shape == (28, 28) and img[8, 4:24].min() == 1.0
    std = vd.load(name, tmp_path / "data", scale=True, download=False)
    assert abs(float(std.train.x.mean())) < 1e-5  # standardized with the training statistics


def test_cifar_batches_load_channels_last(cifar_files):
    data = vd.load("cifar10", cifar_files, download=False)
    assert (len(data.train), len(data.test)) == (40, 10)  # 5 batches of 8
    assert data.image_shape == (32, 32, 3) and data.input_shape == (3072,)
    pixel = data.train.x[0].reshape(32, 32, 3)[0, 0]
    assert pixel.tolist() == pytest.approx([200 / 255, pixel[1].item(), 10 / 255])
    assert data.class_names[0] == "airplane" and data.train.y[:3].tolist() == [1, 2, 3]


def test_missing_files_say_which_files_go_where(tmp_path):
    with pytest.raises(DataNotFound) as e:
        vd.load("mnist", tmp_path / "nowhere", download=False)
    msg = str(e.value)
    assert "\n" not in msg and "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert f"{tmp_path / 'nowhere' / 'MNIST' / 'raw'}/" in msg
    with pytest.raises(DataNotFound, match=r"data_batch_1, .*batches\.meta\) in .*"
                                           r"cifar-10-batches-py/"):
        vd.load("cifar10", tmp_path / "nowhere", download=False)


def test_a_failed_download_is_one_line_too(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets as tvd

    def offline(self):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tvd.FashionMNIST, "download", offline)
    with pytest.raises(DataNotFound, match="download failed: URLError.*put the four "
                                           "Fashion-MNIST .gz files, unzipped"):
        vd.load("fashion-mnist", tmp_path, download=True)


def test_digits_mlp_and_cnn_run_on_mnist_files(tmp_path):
    write_idx(tmp_path / "data" / "MNIST" / "raw")
    common = dict(dataset="mnist", data_dir=str(tmp_path / "data"), download=False, epochs=1,
                  track=False)
    mlp = run("digits-mlp", hidden=[16], explain_samples=1, explain_num_samples=100, **common)
    assert mlp.model[1].in_features == 784 and 0 <= mlp.metrics["test_acc"] <= 1
    assert (mlp.dir / "figures" / "per_class.png").is_file()
    assert (mlp.dir / "explanations" / "report.json").is_file()  # LIME on a 28x28 image
    cnn = run("digits-cnn", channels=[4], dense=8, explain=False, **common)
    conv = [m for m in cnn.model if type(m).__name__ == "Conv2d"][0]
    linear = [m for m in cnn.model if type(m).__name__ == "Linear"][0]
    assert tuple(conv.weight.shape) == (4, 1, 3, 3) and linear.in_features == 4 * 14 * 14
    assert "Total params" in (cnn.dir / "summary.txt").read_text()


def test_digits_cnn_takes_colour_images(cifar_files):
    res = run("digits-cnn", dataset="cifar10", data_dir=str(cifar_files), download=False,
              epochs=1, channels=[4], dense=8, shift=1, explain=False, track=False)
    conv = [m for m in res.model if type(m).__name__ == "Conv2d"][0]
    assert tuple(conv.weight.shape) == (4, 3, 3, 3)  # three input channels
    assert 0 <= res.metrics["test_acc"] <= 1


def test_colour_shifts_move_pixels_not_channels():
    import torch

    from supervised.digits_cnn import shifts

    img = torch.zeros(1, 4, 4, 3)
    img[0, 1, 1] = torch.tensor([1.0, 2.0, 3.0])
    torch.manual_seed(0)
    out = shifts(1, (4, 4, 3))(img.reshape(1, -1)).reshape(4, 4, 3)
    (y, x), = {tuple(p[:2]) for p in out.nonzero().tolist()}  # one pixel, all three channels
    assert out[y, x].tolist() == [1.0, 2.0, 3.0] and abs(y - 1) <= 1 and abs(x - 1) <= 1


# -- image_options: the one definition of dataset / data_dir / download ----------------------

IMAGE_LABS = {  # lab: (the choices of its family, whether its dataset help has a caveat)
    "digits-mlp": (vd.CHOICES, False), "digits-cnn": (vd.CHOICES, False),
    **{lab: (("digits", "mnist", "fashion-mnist"), lab in ("gan", "dcgan"))
       for lab in ("autoencoder", "denoising-ae", "anomaly-ae", "pca-vs-ae", "vae", "gan",
                   "dcgan")},
}
KEYS = ("dataset", "data_dir", "download")


def _keys(config_cls) -> dict:
    from labs import config

    return {f.name: f for f in config.fields(config_cls) if f.name in KEYS}


@pytest.mark.parametrize("lab", sorted(IMAGE_LABS))
def test_every_image_lab_takes_its_data_keys_from_image_options(lab):
    from labs import registry

    choices, caveat = IMAGE_LABS[lab]
    cls = registry.discover().get(lab).load().Config
    assert issubclass(cls, vd.ImageOptions)
    got, shared = _keys(cls), _keys(vd.image_options(choices))
    assert got["dataset"].choices == choices and got["dataset"].default == "digits"
    assert got["data_dir"] == shared["data_dir"] and got["download"] == shared["download"]
    # the family's help, word for word; a caveat only goes inside its closing parenthesis
    base = shared["dataset"].help
    assert (got["dataset"].help.startswith(base[:-1] + "; ") if caveat
            else got["dataset"].help == base)


def test_the_option_help_says_the_same_in_every_family():
    full, grey = (_keys(vd.image_options(c)) for c in (vd.CHOICES, ("digits", "mnist",
                                                                    "fashion-mnist")))
    assert full["download"].help == grey["download"].help == (
        "try to download a missing data set (needs the network)")
    assert full["data_dir"].help == ("folder holding MNIST/, FashionMNIST/ or "
                                     "cifar-10-batches-py/ (downloaded there when possible)")
    assert grey["data_dir"].help == ("folder holding MNIST/ or FashionMNIST/ (downloaded "
                                     "there when possible)")
    assert full["dataset"].help == (
        "digits: scikit-learn's 8x8 (no download); mnist / fashion-mnist (28x28), cifar10 "
        "(32x32x3): read from data_dir with torchvision (their own test split: test_size is "
        "not used)")
    assert grey["dataset"].help == full["dataset"].help.replace(", cifar10 (32x32x3)", "")


def test_image_options_is_one_class_per_family_and_refuses_unknown_sets():
    assert vd.image_options() is vd.image_options(list(vd.CHOICES))
    assert vd.image_options(("digits", "mnist")) is not vd.image_options()
    with pytest.raises(ValueError, match="svhn"):
        vd.image_options(("digits", "svhn"))
    with pytest.raises(ValueError):
        vd.image_options(("digits",))  # nothing for data_dir to hold


def test_a_family_that_narrows_the_choices_refuses_cifar10_in_one_line(cli, runs_dir):
    from dataclasses import dataclass

    from labs import ConfigError, SplitConfig, config

    @dataclass
    class Grey(vd.image_options(("digits", "mnist"), note="grey only"), SplitConfig):
        pass

    with pytest.raises(ConfigError) as e:
        config.build(Grey, {"dataset": "cifar10"})
    assert str(e.value) == "bad value for 'dataset' (--set): 'cifar10'; choose one of digits, mnist"
    assert "grey only)" in _keys(Grey)["dataset"].help
    for lab in ("autoencoder", "gan"):  # the generative labs, from the command line
        code, _, err = cli("run", lab, "--set", "dataset=cifar10", "--no-track")
        assert code == 2 and err.count("\n") == 1
        assert err.strip().endswith("'cifar10'; choose one of digits, mnist, fashion-mnist")
    assert not runs_dir.exists()


def test_load_images_is_the_digits_or_the_torchvision_set(tmp_path):
    from dataclasses import dataclass

    import torch

    from labs import SplitConfig, config, datasets

    @dataclass
    class Config(vd.image_options(), SplitConfig):
        pass

    cfg = config.build(Config, {"seed": "3", "val_size": "0.2"})
    a, b = cfg.load_images(scale="unit"), datasets.digits(test_size=0.2, val_size=0.2,
                                                          scale="unit", seed=3)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    write_idx(tmp_path / "MNIST" / "raw")
    cfg = config.build(Config, {"dataset": "mnist", "data_dir": str(tmp_path),
                                "download": "false"})
    data = cfg.load_images(scale=True, val_size=0.25)
    assert data.image_shape == (28, 28) and len(data.val.x) == 10 and len(data.test.x) == 20
    with pytest.raises(DataNotFound, match="download=false"):
        config.build(Config, {"dataset": "cifar10", "data_dir": str(tmp_path),
                              "download": "false"}).load_images(scale=True)


def test_no_lab_declares_the_image_data_keys_again():
    root = Path(__file__).resolve().parents[1]
    for pkg in ("supervised", "generative", "agents", "explain", "labs"):
        for path in (root / pkg).rglob("*.py"):
            if path.name != "vision_data.py":
                text = path.read_text()
                assert "data_dir: str = option(" not in text, path
                assert "download: bool = option(" not in text, path
