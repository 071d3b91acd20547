"""The generative labs on MNIST / Fashion-MNIST: tiny IDX files written here (the supervised
labs' test helpers), loaded through the same `labs.datasets.vision`, one epoch each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from labs import run
from tests.test_vision_data import write_idx

N_TRAIN, N_TEST = 40, 20


@pytest.fixture
def mnist(tmp_path) -> Path:
    write_idx(tmp_path / "data" / "MNIST" / "raw", N_TRAIN, N_TEST)
    return tmp_path / "data"


def _opts(data_dir: Path) -> list[str]:
    return ["--set", "dataset=mnist", "--set", f"data_dir={data_dir}", "--set",
            "download=false"]


def test_images01_reads_mnist_as_unlabelled_unit_images(tmp_path):
    from generative.common import digits01, images, images01, side

    write_idx(tmp_path / "data" / "FashionMNIST" / "raw", N_TRAIN, N_TEST)
    data = images01("fashion-mnist", data_dir=str(tmp_path / "data"), download=False,
                    test_size=0.2, val_size=0.25, seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 20)
    assert not data.supervised and data.train.y is None and data.n_classes == 0
    assert data.image_shape == (28, 28) and side(data) == 28 and side(data.test.x) == 28
    x = data.test.x
    assert x.shape == (20, 784) and float(x.min()) >= 0 and float(x.max()) == 1.0
    assert data.extras["labels"]["test"].tolist() == [i % 10 for i in range(20)]
    assert data.extras["class_names"][0] == "T-shirt/top"
    assert images(x[:3])[0].shape == (28, 28)
    binary = images01("fashion-mnist", data_dir=str(tmp_path / "data"), download=False,
                      test_size=0.2, val_size=0.0, seed=0, binarize=True)
    assert set(torch.unique(binary.train.x).tolist()) == {0.0, 1.0} and binary.val is None
    # the digits are digits01's, untouched
    kw = dict(test_size=0.2, val_size=0.1, seed=3, binarize=True)
    a, b = images01("digits", **kw), digits01(**kw)
    assert torch.equal(a.train.x, b.train.x) and a.train.x.shape[1] == 64
    assert images(a.train.x[:2])[0].shape == (8, 8)


def test_autoencoder_on_mnist_files(mnist):
    for arch in ("dense", "conv"):
        res = run("autoencoder", dataset="mnist", data_dir=str(mnist), download=False,
                  epochs=1, arch=arch, hidden=[16], latent=2, track=False)
        model = res.model
        with torch.no_grad():
            out = model(torch.zeros(3, 784))
        assert out.shape == (3, 784)
        assert 0 < res.metrics["mse_ratio"] and 0 <= res.metrics["latent_nn_agreement"] <= 1
        assert {p.name for p in (res.dir / "figures").iterdir()} >= {
            "reconstructions.png", "latent.png", "neighbours.png", "curves.png"}
    first = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)][0]
    assert tuple(first.weight.shape) == (16, 1, 3, 3)  # the conv stack on 28x28 -> 14x14


def _sample(cli, runs_dir, lab: str) -> Path:
    (path,) = (runs_dir / lab).iterdir()
    code, out, err = cli("sample", path.name, "--n", "16", "--seed", "3")
    assert code == 0, err
    return Path(out.strip())


@pytest.mark.parametrize("lab, sets", [
    ("vae", ["hidden=[16]", "iw_samples=4"]),
    ("gan", ["hidden=[16]", "explain_samples=1", "explain_num_samples=50"]),
])
def test_vae_and_gan_on_mnist_files_sample_28x28_and_skip_the_digits_judge(
        cli, runs_dir, mnist, lab, sets):
    from PIL import Image

    code, _, err = cli("run", lab, "--epochs", "1", "--no-track", *_opts(mnist),
                       *[a for s in sets for a in ("--set", s)])
    assert code == 0, err
    notes = [line for line in err.splitlines() if "skipped on mnist" in line]
    assert len(notes) == 1 and notes[0].startswith(f"warning: {lab}: digits-FID, digits-IS")
    assert "their judge is an 8x8 digits classifier" in notes[0]
    (path,) = (runs_dir / lab).iterdir()
    metrics = json.loads((path / "summary.json").read_text())["metrics"]
    assert metrics["quality_skipped"] == 1.0
    assert not {"digits_fid", "digits_is", "class_coverage", "tstr_acc", "best_digits_fid",
                "test_digits_fid"} & set(metrics)
    assert {"samples.png", "curves.png"} <= {p.name for p in (path / "figures").iterdir()}
    with Image.open(_sample(cli, runs_dir, lab)) as im:
        assert im.size == (4 * 30 + 2, 4 * 30 + 2)  # 4x4 tiles of 28x28 (scale 1), gutters
    code, _, err = cli("eval", path.name)  # `lab eval` reloads the 28x28 models
    assert code == 0, err
    evaluated = json.loads(next(path.glob("eval-*.json")).read_text())["metrics"]
    assert evaluated["quality_skipped"] == 1.0 and "digits_fid" not in evaluated
    if lab == "vae":
        assert np.isfinite(metrics["test_nll_iw"]) and metrics["test_nelbo"] > 0
    else:
        with Image.open(path / "figures" / "progress.gif") as gif:
            assert gif.size == (8 * 29 + 1, 8 * 29 + 1)  # 8x8 samples of 28x28, 1-pixel lines
        assert (path / "explanations" / "report.json").is_file()  # LIME on a 28x28 image


def test_dcgan_adapts_its_stack_to_28x28(mnist):
    with pytest.warns(RuntimeWarning, match="skipped on mnist"):
        res = run("dcgan", dataset="mnist", data_dir=str(mnist), download=False, epochs=1,
                  channels=8, explain=False, track=False)
    gan = res.model
    assert gan.side == 28 and gan.sample(5).shape == (5, 784)
    assert gan.discriminator(torch.zeros(5, 784)).shape == (5, 1)
    assert res.metrics["quality_skipped"] == 1.0 and "digits_fid" not in res.metrics


def test_the_digits_judge_refuses_other_images():
    from generative import quality

    j = quality.Judge(quality.JudgeNet([64, 128, 64, 10]), 0.0, "untrained")
    assert j.features(np.zeros((3, 8, 8))).shape == (3, 64)
    with pytest.raises(ValueError, match="8x8 digits .64 pixels., not 784-pixel images"):
        j.features(np.zeros((3, 784)))


def test_denoising_anomaly_and_pca_labs_on_mnist_files(mnist):
    """The other three autoencoder labs take the same data options and size to 28x28."""
    kw = dict(dataset="mnist", data_dir=str(mnist), download=False, epochs=1, track=False)
    den = run("denoising-ae", hidden=[16], latent=4, **kw)
    assert den.model(torch.zeros(2, 784)).shape == (2, 784)
    assert den.metrics["noisy_mse"] > 0 and (den.dir / "figures" / "denoised.png").is_file()
    ano = run("anomaly-ae", hidden=[16], latent=2, anomaly_digit=3, explain_samples=1,
              explain_num_samples=50, **kw)
    assert 0 <= ano.metrics["roc_auc"] <= 1
    report = json.loads((ano.dir / "explanations" / "report.json").read_text())
    assert len(report["explanations"]) == 1  # LIME over a 28x28 image, regression mode
    pca = run("pca-vs-ae", sizes=[2, 4], probe_size=4, hidden=[16], labels_per_class=1,
              **kw)
    assert np.isfinite(pca.metrics["linear_pca_ratio"]) and pca.metrics["pca_mse_2"] > 0
    with pytest.raises(Exception, match="smaller than the 64 pixels"):
        run("pca-vs-ae", sizes=[64], probe_size=64, track=False)
