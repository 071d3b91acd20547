"""The offline quality scores (generative/quality.py): the digits judge is trained once and
cached, its scores order real digits, collapsed digits and noise as they must, and the GAN's
collapse / divergence rules fire when they should."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def digits():
    from generative.common import digits01

    return digits01(test_size=0.2, val_size=0.0, seed=0)


def test_the_shipped_judge_is_used_when_its_recipe_is_current(monkeypatch):
    from generative import quality

    assert quality.shipped_recipe() == quality.RECIPE  # else: python -m generative.quality
    monkeypatch.setattr(quality, "_train", lambda r: pytest.fail("trained a judge"))
    quality._judge_at.cache_clear()
    j = quality.judge()
    assert j.test_acc > 0.95  # held-out digits: 0.967
    assert not quality.cache_dir().exists()  # nothing trained, nothing cached


def test_a_changed_recipe_trains_once_and_caches_without_touching_rng(monkeypatch):
    from generative import quality

    monkeypatch.setattr(quality, "RECIPE", {**quality.RECIPE, "epochs": 2})
    quality._judge_at.cache_clear()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    j = quality.judge()  # trains: the caller's random state is left as it was
    assert torch.equal(torch.rand(3), expected)
    path = quality.cache_dir() / f"digits-judge-{quality.recipe_hash()}.pt"
    assert path.is_file() and j.key == quality.recipe_hash() != quality.recipe_hash(
        {**quality.RECIPE, "epochs": 30})
    quality._judge_at.cache_clear()  # a fresh process: read from the file, not retrained
    monkeypatch.setattr(quality, "_train", lambda r: pytest.fail("retrained a cached judge"))
    x = torch.rand(5, 64)
    assert np.allclose(quality.judge().probs(x), j.probs(x))
    quality._judge_at.cache_clear()


def test_scores_order_real_digits_collapse_and_noise(digits):
    from generative import quality

    train, test = digits.train.x, digits.test.x
    labels = digits.extras["labels"]["test"]
    ref = quality.reference_scores(train, test, seed=0)
    real = quality.scores(test, train)
    collapsed = quality.scores(test[labels < 3], train)  # only 0, 1 and 2
    noise = quality.scores(np.random.default_rng(0).uniform(0, 1, (512, 64)), train)
    assert real["digits_fid"] == pytest.approx(ref["test_digits_fid"])
    assert noise["digits_fid"] == pytest.approx(ref["noise_digits_fid"])
    # measured: real 0.51, three digits 36.8, noise 59.8
    assert real["digits_fid"] < 2 and collapsed["digits_fid"] > 10 * real["digits_fid"]
    assert noise["digits_fid"] > 20 * real["digits_fid"]
    assert real["class_coverage"] == 10 and collapsed["class_coverage"] == 3
    assert real["digits_is"] > 7 > 3.5 > collapsed["digits_is"]  # 8.6 and 3.2
    assert real["confidence"] > noise["confidence"]
    assert quality.frechet(quality.judge().features(train), quality.judge().features(train)) \
        == pytest.approx(0, abs=1e-6)


def test_train_on_synthetic_test_on_real(digits):
    from generative import quality

    lab = digits.extras["labels"]
    real = quality.tstr(digits.test.x, digits.test.x, lab["test"], digits.train.x, lab["train"])
    assert real["tstr_acc"] > 0.85 and real["trtr_acc"] > 0.85  # 0.93 and 0.94
    ones = digits.test.x[lab["test"] == 1]  # total collapse: one class, always answered
    assert quality.tstr(ones, digits.test.x, lab["test"])["tstr_acc"] < 0.15


def test_collapse_and_divergence_rules():
    from generative.gan import d_loss_floor, troubles

    assert troubles(10, 10, 1.2, 0.1) == []
    assert troubles(2, 2, 1.2, 0.1) == []  # an untrained generator has not collapsed
    assert troubles(7, 10, 1.2, 0.1) == ["collapse"]  # fell by 3 from its peak
    assert troubles(5, 7, 1.2, 0.1) == ["collapse"]  # below 6 after reaching it
    assert troubles(None, 10, 0.0, 0.0) == ["divergence"]  # D loss 0: D wins outright
    floor = d_loss_floor(0.1)  # the smoothed real label's entropy: 0.325 nats
    assert floor == pytest.approx(0.325, abs=1e-3) and d_loss_floor(0.0) == 0
    assert troubles(None, 10, floor + 0.01, 0.1) == ["divergence"]
    assert troubles(None, 10, floor + 0.2, 0.1) == []


def test_the_gan_watch_warns_once_about_a_collapse_that_persists(monkeypatch, tmp_path):
    import warnings
    from types import SimpleNamespace

    from generative import gan, quality

    class FakeRun:
        checkpoints = tmp_path

        def log(self, *args, **kwargs):
            pass

    coverage = iter([10, 10, 6, 10, 6, 6, 6])  # one wobble, then a fall that stays
    monkeypatch.setattr(quality, "scores", lambda x, ref, j: {
        "digits_fid": 1.0, "digits_is": 1.0, "confidence": 1.0,
        "class_coverage": float(next(coverage))})
    watch = gan.Quality(FakeRun(), torch.rand(10, 64), every=1, seed=0, smooth=0.1)
    trainer = SimpleNamespace(model=gan.GAN(4, [8]), epochs=99, should_stop=False, epoch=7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(1, 8):
            watch.on_epoch_end(trainer, epoch, {"train_d_loss": 1.0})
    assert [str(w.message) for w in caught] == [
        "gan: mode collapse at epoch 6: samples cover 6 of 10 digits (peak 10)"]
    m = watch.metrics()
    assert m["collapse_warnings"] == 2 and m["min_class_coverage"] == 6
    assert m["divergence_warnings"] == 0 and m["best_epoch"] == 1  # no FID beat the first
