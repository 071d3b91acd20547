"""The generative labs: smoke runs with tiny configs, `lab eval` of a saved run, and `slow`
checks that the reconstructions and the ELBO beat the mean-image baselines by a wide margin."""

from __future__ import annotations

import json
import math

import pytest

from labs import checkpoint, run


def _figures(res) -> set[str]:
    return {p.name for p in (res.dir / "figures").iterdir()}


def _logged(res) -> set[str]:
    rows = [json.loads(line) for line in (res.dir / "metrics.jsonl").read_text().splitlines()]
    return {k for r in rows for k in r}


def test_the_generative_labs_are_registered():
    from labs.registry import discover

    expected = {"autoencoder": "generative.autoencoder:Autoencoder",
                "vae": "generative.vae:VariationalAutoencoder",
                "gan": "generative.gan:DigitsGAN"}
    labs = discover().labs
    assert {n: labs[n].entry_point for n in expected if n in labs} == expected


def test_autoencoder_smoke():
    res = run("autoencoder", epochs=2, hidden=[16], latent=2, track=False)
    m = res.metrics
    assert {"reconstructions.png", "latent.png", "neighbours.png", "curves.png"} <= _figures(res)
    assert m["baseline_mse"] > 0 and m["test_mse"] == pytest.approx(m["test_loss"], rel=1e-5)
    assert m["mse_ratio"] == pytest.approx(m["test_mse"] / m["baseline_mse"])
    assert 0 <= m["latent_nn_agreement"] <= 1
    assert "code_inactive" not in m  # reported for sparse codes only
    assert (res.dir / "checkpoints" / "model.pt").is_file()
    assert not any((res.dir / "explanations").iterdir())  # explains = "none"


def test_sparse_conv_autoencoder_reports_inactive_units():
    res = run("autoencoder", arch="conv", epochs=1, latent=4, sparse_l1=0.01, track=False)
    m = res.metrics
    assert 0 <= m["code_inactive"] <= 1 and 0 <= m["code_dead_units"] <= 4
    # the custom step logs the penalty beside the reconstruction error, on train and val
    assert {"train_mse", "train_code_l1", "val_mse", "val_code_l1"} <= _logged(res)
    # the loss adds the L1 penalty
    assert m["test_loss"] == pytest.approx(m["test_mse"] + 0.01 * m["test_code_l1"], rel=1e-4)


def test_vae_smoke_logs_every_term_and_reports_nats():
    res = run("vae", epochs=2, hidden=[32], latent=2, iw_samples=20, track=False)
    m = res.metrics
    for split in ("train", "val"):
        assert {f"{split}_loss", f"{split}_recon", f"{split}_kl", f"{split}_nelbo"} <= _logged(res)
    assert m["test_nelbo"] == pytest.approx(m["test_recon"] + m["test_kl"], rel=1e-5)
    assert m["test_loss"] == pytest.approx(m["test_nelbo"], rel=1e-5)  # beta = 1
    assert m["test_kl"] >= 0 and 0 < m["baseline_nll"] < 64 * math.log(2) + 1e-6
    assert math.isfinite(m["test_nll_iw"])
    assert {"samples.png", "traversal.png", "interpolation.png", "reconstructions.png",
            "latent.png", "curves.png"} <= _figures(res)


def test_beta_weighs_the_kl_term():
    m = run("vae", epochs=1, hidden=[16], beta=4.0, iw_samples=0, likelihood="gaussian",
            track=False).metrics
    assert m["test_loss"] == pytest.approx(m["test_recon"] + 4.0 * m["test_kl"], rel=1e-5)
    assert "test_nll_iw" not in m


def test_gan_smoke_steps_two_optimizers():
    res = run("gan", epochs=2, hidden=[16], d_steps=2, progress_every=1, track=False)
    m = res.metrics
    assert {"train_d_loss", "train_g_loss", "train_d_real", "train_d_fake", "lr/d/group0",
            "lr/g/group0"} <= _logged(res)
    assert {"test_d_loss", "test_g_loss", "sample_nn_mse", "noise_nn_mse"} <= set(m)
    assert m["sample_nn_ratio"] == pytest.approx(m["sample_nn_mse"] / m["noise_nn_mse"])
    assert {"samples.png", "progress.png", "curves.png"} <= _figures(res)
    # both optimizers' states are checkpointed, for --resume
    state = checkpoint.load(res.dir / "checkpoints" / "last.pt")
    assert set(state["optimizer"]) == {"d", "g"} and state["optimizer"]["g"]["state"]


@pytest.mark.parametrize("lab, key", [("autoencoder", "mse_ratio"), ("vae", "baseline_nll"),
                                      ("gan", "noise_nn_mse")])
def test_lab_eval_reloads_a_generative_run(cli, runs_dir, lab, key):
    code, _, err = cli("run", lab, "--epochs", "2", "--no-track", "--set", "hidden=[16]")
    assert code == 0, err
    (path,) = (runs_dir / lab).iterdir()
    code, out, err = cli("eval", path.name)
    assert code == 0, err
    result = json.loads(next(path.glob("eval-*.json")).read_text())["metrics"]
    saved = json.loads((path / "summary.json").read_text())["metrics"]
    assert result[key] == pytest.approx(saved[key], rel=1e-5) and key in out


@pytest.mark.slow
def test_autoencoder_reconstructs_far_better_than_the_mean_image():
    m = run("autoencoder", track=False).metrics
    assert m["mse_ratio"] < 0.5  # seed 0: 0.18
    assert m["latent_nn_agreement"] > 0.9  # similar codes, same digit (seed 0: 0.95)


@pytest.mark.slow
def test_vae_negative_elbo_beats_the_mean_image_likelihood():
    m = run("vae", track=False).metrics
    # binarized digits, Bernoulli likelihood: the independent-pixel mean image (KL = 0)
    # costs 25.2 nats; seed 0 reaches 18.5. 21 nats leaves room for seeds and machines
    # while still 4 nats (55x in probability) better than the baseline.
    assert m["test_nelbo"] < 21.0 and m["test_nelbo"] < m["baseline_nll"] - 4.0
    assert m["test_nll_iw"] <= m["test_nelbo"] + 0.1  # the IW bound is the tighter one


@pytest.mark.slow
def test_gan_samples_lie_near_real_digits():
    m = run("gan", track=False).metrics
    # squared distance to the nearest training digit: uniform noise 0.20, test digits 0.019
    # (the floor), seed 0's samples 0.028 (ratio 0.14)
    assert m["sample_nn_ratio"] < 0.3 and m["sample_nn_mse"] < 3 * m["test_nn_mse"]
