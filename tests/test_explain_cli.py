"""`lab explain <run>`: more samples, a given input file, and its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labs import run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("runs")
    old = os.environ.get("LAB_RUNS_DIR")
    os.environ["LAB_RUNS_DIR"] = str(root)
    try:
        res = run("digits-mlp", epochs=3, explain=False, track=False, runs_dir=root)
    finally:
        if old is None:
            os.environ.pop("LAB_RUNS_DIR")
        else:
            os.environ["LAB_RUNS_DIR"] = old
    return res


def test_explain_more_samples_is_repeatable(cli, digits_run):
    code, out, err = cli("explain", str(digits_run.dir), "--samples", "2")
    assert code == 0, err
    code, out2, _ = cli("explain", str(digits_run.dir), "--samples", "2")
    folders = sorted((digits_run.dir / "explanations").glob("more-*"))
    assert len(folders) == 2  # a second call never overwrites the first
    a, b = (json.loads((f / "sample_1.json").read_text()) for f in folders)
    assert a["weights"] == b["weights"] and len(a["weights"]) > 1
    assert "explain_deletion_ratio" in out


def test_explain_an_image_file(cli, digits_run, tmp_path):
    import matplotlib.image as mpimg
    from sklearn.datasets import load_digits

    img = load_digits().images[0] / 16.0  # a zero, as an 8x8 grayscale PNG
    mpimg.imsave(tmp_path / "zero.png", img, cmap="gray", vmin=0, vmax=1)
    code, out, err = cli("explain", str(digits_run.dir), "--input", str(tmp_path / "zero.png"))
    assert code == 0, err
    folder = max((digits_run.dir / "explanations").glob("more-*"))
    result = json.loads((folder / "sample_0.json").read_text())
    assert result["predicted"] == 0
    # the prediction and its probability are printed; light ink on dark, like the data: as is
    assert f"prediction: 0 (p={result['probability']:.3f})" in out
    assert "inverted" not in out and "resized" not in out


def drawing(size: int) -> np.ndarray:
    """A zero drawn as people draw: dark ink on white paper, `size` x `size` pixels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    zero = (load_digits().images[0] / 16.0).astype(np.float32)  # light on dark, 8x8
    if size != 8:
        zero = np.asarray(Image.fromarray(zero).resize((size, size), Image.Resampling.NEAREST))
    return 1.0 - np.clip(zero, 0, 1)


@pytest.mark.parametrize("size", [8, 28])
def test_a_drawing_on_paper_is_resized_and_inverted(cli, digits_run, tmp_path, size):
    import matplotlib.image as mpimg

    path = tmp_path / f"drawn{size}.png"
    mpimg.imsave(path, drawing(size), cmap="gray", vmin=0, vmax=1)  # RGBA, like most PNGs
    code, out, err = cli("explain", str(digits_run.dir), "--input", str(path))
    assert code == 0, err
    folder = max((digits_run.dir / "explanations").glob("more-*"))
    assert json.loads((folder / "sample_0.json").read_text())["predicted"] == 0
    assert "note: inverted the image: it is dark ink on light paper" in out
    assert ("note: resized 28x28 -> 8x8 (area averaging)" in out) == (size == 28)
    assert "prediction: 0 (p=" in out


def test_an_image_given_to_a_tabular_lab_is_one_line(cli, xor_run, tmp_path):
    import matplotlib.image as mpimg

    mpimg.imsave(tmp_path / "x.png", np.zeros((8, 8)), cmap="gray")
    code, _, err = cli("explain", str(xor_run.dir), "--input", str(tmp_path / "x.png"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "x.png is an image; this tabular lab reads a CSV row of 2 numbers" in err
    (tmp_path / "x.bin").write_bytes(bytes(range(128, 256)))
    code, _, err = cli("explain", str(xor_run.dir), "--input", str(tmp_path / "x.bin"))
    assert code == 2 and "x.bin is not a text file" in err and err.count("\n") == 1


@pytest.mark.parametrize("text, fragment", [
    ("lab: [digits-mlp\nconfig: {", "is not valid YAML (line"),
    ("- just\n- a list\n", "is not a run's config"),
    ("config: {}\n", "names no lab"),
])
def test_a_damaged_config_yaml_is_one_line(cli, digits_run, tmp_path, text, fragment):
    import shutil

    copy = tmp_path / "damaged"
    shutil.copytree(digits_run.dir, copy)
    (copy / "config.yaml").write_text(text)
    for command in ("explain", "eval"):
        code, _, err = cli(command, str(copy))
        assert code == 2 and err.startswith("error:") and err.count("\n") == 1, err
        assert fragment in err and "Traceback" not in err


def test_a_checkpoint_without_model_is_one_line(cli, digits_run, tmp_path):
    import shutil

    import torch

    copy = tmp_path / "no-model"
    shutil.copytree(digits_run.dir, copy)
    torch.save({"weights": torch.zeros(3)}, copy / "checkpoints" / "model.pt")
    code, _, err = cli("explain", str(copy))
    assert code == 2 and err.count("\n") == 1
    assert "has no 'model' entry (it holds: weights)" in err


@pytest.mark.parametrize("content, fragment", [
    ("text", "cannot read image"),
    ("missing", "no input file"),
])
def test_bad_input_files_are_one_line(cli, digits_run, tmp_path, content, fragment):
    path = tmp_path / "in.png"
    if content == "text":
        path.write_text("not an image")
    code, _, err = cli("explain", str(digits_run.dir), "--input", str(path))
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    assert fragment in err


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    return run("xor-mlp", epochs=200, explain=False, track=False, lr=0.1,
               runs_dir=tmp_path_factory.mktemp("xor-runs"))


def test_explain_a_csv_row_for_a_tabular_lab(cli, xor_run, tmp_path):
    res = xor_run
    row = tmp_path / "row.csv"
    row.write_text("x1,x2\n1,0\n")
    code, out, err = cli("explain", str(res.dir), "--input", str(row))
    assert code == 0, err
    folder = max((res.dir / "explanations").glob("more-*"))
    assert json.loads((folder / "sample_0.json").read_text())["predicted"] == 1
    row.write_text("1,0,1\n")
    code, _, err = cli("explain", str(res.dir), "--input", str(row))
    assert code == 2 and "expects 2" in err


def test_explain_needs_saved_weights(cli, digits_run):
    import shutil

    copy = digits_run.dir.parent / "copy-without-weights"
    shutil.copytree(digits_run.dir, copy)
    (copy / "checkpoints" / "model.pt").unlink()
    code, _, err = cli("explain", str(copy))
    assert code == 2 and "no checkpoint" in err


def test_bad_explain_setting_is_one_line(cli):
    code, _, err = cli("run", "xor-mlp", "--epochs", "2", "--no-track",
                       "--set", "explain_num_samples=5")
    (error,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and "num_samples must be >= 10" in error and "Traceback" not in err


def test_lab_with_nothing_to_explain_says_so(cli, monkeypatch):
    from supervised.xor import XorMLP

    monkeypatch.setattr(XorMLP, "explains", "none")
    res = run("xor-mlp", epochs=2, track=False)
    assert not any((res.dir / "explanations").iterdir())  # nothing explained after training
    code, _, err = cli("explain", str(res.dir))
    assert code == 2 and "has nothing to explain" in err and err.count("\n") == 1
