"""mlp-vs-cnn-shift: both trained on centred digits; the CNN holds up better when they move."""

from __future__ import annotations

import json

import pytest
import torch

from labs import run
from supervised import shift_robustness as sr


def test_the_two_cnn_heads():
    glob, flat = sr.cnn([4, 4, 8], 10, "global"), sr.cnn([4, 4, 8], 10, "flatten")
    assert glob[-1].in_features == 8 and flat[-1].in_features == 8 * 4 * 4
    assert tuple(glob(torch.zeros(2, 64)).shape) == (2, 10)


def test_shifted_accuracy_averages_four_directions():
    x = torch.zeros(4, 64)
    x[:, 27] = 1.0  # one lit pixel at row 3, column 3
    seen = []

    def predict(batch):  # class = the lit pixel's column; remembers what it was shown
        seen.append(batch.reshape(-1, 8, 8)[0].nonzero().tolist())
        return torch.nn.functional.one_hot(batch.reshape(-1, 8, 8).sum(1).argmax(-1), 10)

    acc, right = sr.shifted_accuracy(predict, x, torch.full((4,), 3), 2, (8, 8))
    assert seen == [[[5, 3]], [[1, 3]], [[3, 5]], [[3, 1]]]  # down, up, right, left
    assert acc == 0.5 and right.tolist() == [5] * 4  # columns stay put moving up or down


def test_smoke():
    res = run("mlp-vs-cnn-shift", epochs=2, hidden=[16], channels=[4, 4, 8], max_shift=2,
              explain_samples=1, explain_num_samples=100, track=False)
    m = res.metrics
    assert {f"{n}/acc_shift{k}" for n in ("mlp", "cnn") for k in range(3)} <= set(m)
    assert all(0 <= m[f"cnn/acc_shift{k}"] <= 1 for k in range(3))
    figures = {p.name for p in (res.dir / "figures").iterdir()}
    assert {"accuracy_vs_shift.png", "shifted_digit.png", "per_class_shift.png"} <= figures
    rows = [json.loads(line) for line in (res.dir / "metrics.jsonl").read_text().splitlines()]
    shifts = [r for r in rows if "cnn/acc" in r]
    assert [r["shift"] for r in shifts] == [0, 1, 2]  # one row per shift, on its own axis
    assert set(res.models) == {"mlp", "cnn"}


@pytest.mark.slow
def test_the_cnn_holds_up_better_under_shifts():
    # ~25 s of CPU on an idle 2-core machine
    m = run("mlp-vs-cnn-shift", explain=False, track=False).metrics
    assert m["mlp/acc_shift0"] > 0.93 and m["cnn/acc_shift0"] > 0.93  # both learned
    assert m["cnn/acc_shift2"] > m["mlp/acc_shift2"] + 0.2
    assert m["cnn/acc_shift3"] > m["mlp/acc_shift3"] + 0.1
