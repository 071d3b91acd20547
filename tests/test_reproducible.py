"""A run is its config and seed: the same lab run twice in one process, whatever ran before it,
ends with the same weights and numbers, bit for bit. Work a process does once and caches (the
digits judge) must not move the run's random generators."""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import pytest
import torch

from labs import rng_untouched, run


def _weights(result) -> str:
    h = hashlib.sha256()
    for name, model in sorted(result.models.items()):
        for key, t in model.state_dict().items():
            h.update(f"{name}.{key}".encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _numbers(result) -> dict:
    return {k: v for k, v in result.metrics.items()
            if isinstance(v, float) and not math.isnan(v) and "time" not in k}


def _rngs() -> tuple:
    return random.getstate(), np.random.get_state()[1].tobytes(), torch.get_rng_state()


def test_rng_untouched_gives_back_every_generator():
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    py, npy, cpu = _rngs()
    with rng_untouched():
        torch.randn(3), np.random.rand(3), random.random()
    after = _rngs()
    assert after[0] == py and after[1] == npy and torch.equal(after[2], cpu)


def test_building_the_digits_judge_draws_nothing():
    from generative import quality

    quality._judge_at.cache_clear()  # as in a fresh process: this call builds it
    torch.manual_seed(0)
    before = torch.get_rng_state()
    quality.judge()
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.filterwarnings("ignore:gan. mode collapse")  # one epoch: of course
def test_a_gan_run_is_the_same_as_the_first_of_its_process_and_after_another_lab(tmp_path):
    """The first GAN run of a process loaded the judge after seeding (its layers drew initial
    weights), so it trained on other noise than every later run with the same seed."""
    from generative import quality

    cfg = dict(epochs=1, hidden=[16], score_every=1, explain=False, track=False,
               runs_dir=tmp_path)
    quality._judge_at.cache_clear()  # as in a fresh process: the first run loads the judge
    _same_before_and_after_another_lab("gan", cfg)


def test_a_supervised_run_is_the_same_before_and_after_other_labs(tmp_path):
    _same_before_and_after_another_lab(
        "digits-mlp", dict(epochs=2, explain=False, track=False, runs_dir=tmp_path))


def _same_before_and_after_another_lab(lab: str, cfg: dict) -> None:
    first = run(lab, **cfg)
    run("xor-mlp", explain=False, track=False, runs_dir=cfg["runs_dir"])
    again = run(lab, **cfg)
    assert _weights(first) == _weights(again)
    assert _numbers(first) == _numbers(again)


def test_auto_threads_is_the_same_after_a_run_that_chose_its_own(monkeypatch):
    """On a machine with many cores auto means torch's default; it used to mean "leave the
    count alone", so a run after `threads=N` ran on N threads (other float sums)."""
    from labs import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    n = torch.get_num_threads()
    try:
        auto = threads.apply(0)
        assert threads.apply(auto + 1) == auto + 1  # an earlier run of the process chose
        assert threads.apply(0) == auto
    finally:
        torch.set_num_threads(n)
