"""cnn-architectures: the five classic shapes on the digits at 32x32, their parameter counts,
and the residual degradation demo (deep plain stacks train worse; shortcuts fix it)."""

from __future__ import annotations

import json

import pytest
import torch

from labs import images, run
from labs.summary import summarize
from supervised import cnn_architectures as ca


def test_lenet5_has_the_courses_61706_parameters_at_32x32():
    s = summarize(ca.lenet5(32, 10), (32 * 32,))
    assert (s.total, s.trainable) == (61_706, 61_706)
    assert "[1, 16, 5, 5]" in s.text  # C3 -> S4 on 32x32: 16 maps of 5x5


@pytest.mark.parametrize("name", ca.ARCHITECTURES)
def test_every_architecture_maps_flat_32x32_digits_to_logits(name):
    model = ca.BUILDERS[name](32, 10).eval()
    assert tuple(model(torch.zeros(3, 32 * 32)).shape) == (3, 10)


def test_an_inception_block_concatenates_its_four_branches():
    block = ca.Inception(16, 16, (16, 24), (4, 8), 8)
    out = block(torch.zeros(2, 16, 8, 8))
    assert block.out_channels == 16 + 24 + 8 + 8 and tuple(out.shape) == (2, 56, 8, 8)
    assert [type(m).__name__ for m in block.b5[1]][:1] == ["Conv2d"]
    assert block.b5[1][0].kernel_size == (5, 5) and block.b3[1][0].kernel_size == (3, 3)


def test_the_plain_stack_has_no_shortcut_and_the_residual_one_adds_its_input():
    plain, res = (ca.Residual(4, 4, residual=r, norm=False) for r in (False, True))
    res.load_state_dict(plain.state_dict())
    for block in (plain, res):
        torch.nn.init.zeros_(block.body[-2].weight)  # the body's last conv outputs its bias
        torch.nn.init.zeros_(block.body[-2].bias)
    x = torch.rand(1, 4, 5, 5)
    assert plain(x).abs().max() == 0 and torch.equal(res(x), torch.relu(x))
    convs = [m for m in ca.stack(3, 4, 32, residual=False).modules()
             if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7


def test_upsample_keeps_the_image_and_its_shape():
    x = torch.arange(4.0).reshape(1, 4)  # one flat 2x2 image
    up = images.upsample(x, 4, image_shape=(2, 2))
    assert up.shape == (1, 16)
    assert torch.allclose(up.reshape(4, 4)[::3, ::3], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    assert images.upsample(torch.zeros(2, 3, 8, 8), 32).shape == (2, 3, 32, 32)


def test_per_class_accuracy():
    acc = images.per_class_accuracy([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], 4)
    assert acc[:3].tolist() == [0.5, 1.0, 0.0] and acc[3] != acc[3]  # class 3: no examples


def test_smoke(tmp_path):
    res = run("cnn-architectures", architectures=["lenet5", "inception"], epochs=1,
              shallow=1, deep=2, deg_width=4, deg_epochs=1, explain_samples=1,
              explain_num_samples=100, track=False)
    m = res.metrics
    assert m["lenet5/params"] == 61_706.0 and 0 <= m["inception/test_acc"] <= 1
    assert 0 <= m["train_error/deep_plain"] <= 1 and m["lenet5/s_per_epoch"] > 0
    figures = {p.name for p in (res.dir / "figures").iterdir()}
    assert {"comparison.png", "curves.png", "per_class.png", "degradation.png"} <= figures
    table = json.loads((res.dir / "comparison.table.json").read_text())
    assert table["columns"][:4] == ["variant", "params", "test_acc", "s_per_epoch"]
    assert [r[0] for r in table["rows"]] == ["lenet5", "inception"]
    # one model per fit, reloadable by name; LIME explains the architectures only
    assert set(res.models) == {"lenet5", "inception", "plain-3", "plain-5", "residual-5"}
    assert {p.name for p in (res.dir / "explanations").iterdir()} == {"lenet5", "inception"}
    assert "Total params: 61,706" in (res.dir / "summary.txt").read_text()


def test_nothing_to_train_is_refused():
    from labs import ConfigError

    with pytest.raises(ConfigError, match="nothing to train"):
        run("cnn-architectures", architectures=[], degradation=False, track=False)


@pytest.mark.slow
def test_deeper_plain_stack_trains_worse_and_shortcuts_fix_it():
    # ~20 s of CPU on an idle 2-core machine (the three stacks, 15 epochs each)
    m = run("cnn-architectures", architectures=[], explain=False, track=False).metrics
    shallow, deep, residual = (m[f"train_error/{k}"] for k in
                               ("shallow_plain", "deep_plain", "deep_residual"))
    assert deep > shallow + 0.3  # 21 plain conv layers fit the training data worse than 5
    assert residual < deep - 0.3  # the same 21 layers with identity shortcuts do fit it
