"""The example labs in docs/writing-a-lab.md run on the real framework and do what the page says.

Each example is the page's fenced code block that starts with `# doc-example: <name>`: the test
registers exactly the text a reader copies as a plugin lab and runs it through `lab run`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from plugin_helpers import ROOT, make_dist, make_module, non_public_uses

DOC = ROOT / "docs" / "writing-a-lab.md"
PACKAGE = "doc_example_labs"
LABS = {"autoencoder": ("doc-autoencoder", "DigitsAutoencoder"),
        "vae": ("doc-vae", "DigitsVAE"),
        "gan": ("doc-gan", "RingGAN")}


def doc_examples() -> dict[str, str]:
    """{name: source} of every code block marked `# doc-example: <name>` in the page."""
    out: dict[str, str] = {}
    for block in re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.M | re.S):
        m = re.match(r"# doc-example: (\S+)\n", block)
        if m:
            assert m[1] not in out, f"two blocks are marked doc-example: {m[1]}"
            out[m[1]] = block
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("site")
    for name, source in doc_examples().items():
        make_module(path, f"{PACKAGE}.{name}", source)
    make_dist(path, "lab-doc-examples",
              {lab: f"{PACKAGE}.{name}:{cls}" for name, (lab, cls) in LABS.items()})
    return path


@pytest.fixture
def doc_labs(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))


def epoch_rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("axis") == "epoch"]


def test_every_example_is_tested_and_uses_only_the_public_api():
    examples = doc_examples()
    assert sorted(examples) == sorted(LABS)
    for name, source in examples.items():
        assert non_public_uses(source, f"doc-example {name}") == []
        assert f"class {LABS[name][1]}(Lab):" in source


def test_autoencoder_learns_more_than_the_mean_image_and_reloads(cli, runs_dir, doc_labs):
    code, _, err = cli("run", "doc-autoencoder", "--no-track", "--epochs", "4")
    assert code == 0, err
    (path,) = (runs_dir / "doc-autoencoder").iterdir()
    metrics = json.loads((path / "summary.json").read_text())["metrics"]
    assert metrics["test_loss"] < 0.9 * metrics["mean_image_loss"]
    rows = epoch_rows(path)
    assert len(rows) == 4 and {"train_loss", "val_loss"} <= rows[-1].keys()
    assert "train_acc" not in rows[-1]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert (path / "checkpoints" / "model.pt").is_file()
    assert (path / "checkpoints" / "best.pt").is_file()  # by val_loss: there is a val split
    assert (path / "figures" / "reconstructions.png").is_file()
    # `lab eval` reloads the saved model and measures it with the lab's own evaluate()
    code, out, err = cli("eval", path.name)
    assert code == 0, err
    result = json.loads(next(path.glob("eval-*.json")).read_text())["metrics"]
    assert result["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)


def test_vae_logs_every_term_of_its_train_and_eval_steps(doc_labs, runs_dir):
    from labs import run

    result = run("doc-vae", track=False, progress=False, epochs=2, beta=0.5)
    rows = epoch_rows(result.dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        for split in ("train", "val"):
            loss, recon, kl = (row[f"{split}_{k}"] for k in ("loss", "recon", "kl"))
            assert recon > 0 and kl > 0
            # epoch means of loss = recon + beta * kl, batch by batch
            assert loss == pytest.approx(recon + 0.5 * kl, rel=1e-4)
    assert rows[1]["val_loss"] < rows[0]["val_loss"]
    test = result.metrics
    assert test["test_loss"] == pytest.approx(test["test_recon"] + 0.5 * test["test_kl"],
                                              rel=1e-4)
    assert (result.dir / "checkpoints" / "model.pt").is_file()
    assert (result.dir / "figures" / "samples.png").is_file()


def test_gan_steps_two_optimizers_and_logs_both_learning_rates(doc_labs, runs_dir):
    from labs import checkpoint, run

    result = run("doc-gan", track=False, progress=False, epochs=2, lr=0.004)
    rows = epoch_rows(result.dir)
    assert len(rows) == 2
    for row in rows:
        assert {"train_d_loss", "train_g_loss"} <= row.keys() and "train_loss" not in row
    # one cosine schedule per optimizer, logged by name: 0.004 in epoch 1, half in epoch 2
    for name in ("g", "d"):
        assert [r[f"lr/{name}/group0"] for r in rows] == pytest.approx([0.004, 0.002])
    assert 0.0 <= result.metrics["test_d_acc"] <= 1.0
    assert result.metrics["ring_error"] >= 0.0
    weights = checkpoint.load(result.dir / "checkpoints" / "model.pt")["model"]
    assert {k.split(".")[0] for k in weights} == {"g", "d"}  # both networks in one file
    last = checkpoint.load(result.dir / "checkpoints" / "last.pt")
    assert sorted(last["optimizer"]) == sorted(last["scheduler"]) == ["d", "g"]
    assert last["global_step"] == 2 * 13  # 1,638 training points in batches of 128


@pytest.mark.slow
def test_gan_learns_the_ring(doc_labs, runs_dir):
    from labs import run

    result = run("doc-gan", track=False, progress=False)
    assert result.metrics["ring_error"] < 0.1
