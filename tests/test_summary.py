"""`labs.summary` and `lab summary`: torchinfo's layer table and the parameter counts the course
pins, a summary.txt in every run, and a summary that can never fail a run."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from labs import run, rundir
from labs.summary import summarize


class ChannelsFirst(nn.Module):
    """(N, H, W, C) -> (N, C, H, W): after a Dense on the channel axis, before the convs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


def convnet(filters: list[tuple[int, int]], padding: str, pool: bool = False,
            dense: int = 16) -> nn.Sequential:
    """20x20x3 (Keras's channels-last) -> Dense(`dense`) on the channel axis (Keras applies
    Dense to the last axis: 3*16+16 = 64 parameters, as a 1x1 conv; 0: none) -> ReLU convs
    (`filters`: (count, kernel) pairs), a 2x2 max-pool after the first when `pool` ->
    Flatten -> Dense(2)."""
    layers: list[nn.Module] = [nn.Linear(3, dense)] if dense else []
    layers.append(ChannelsFirst())
    c, side = dense or 3, 20
    for i, (n, k) in enumerate(filters):
        layers += [nn.Conv2d(c, n, k, padding=padding), nn.ReLU()]
        c, side = n, side if padding == "same" else side - k + 1
        if pool and i == 0:
            layers.append(nn.MaxPool2d(2, stride=2))
            side //= 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, 2))


def lenet5() -> nn.Sequential:
    """LeCun et al. 1998 on 32x32 inputs: C1 6@5x5, S2, C3 16@5x5, S4, F5 120, F6 84, 10."""
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                         nn.Linear(84, 10))


def mlp(*widths: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


@pytest.mark.parametrize("model, shape, total", [
    (mlp(2, 3, 2), (2,), 17),
    (mlp(3, 4, 4, 3), (3,), 51),
    (convnet([(32, 3), (64, 5), (128, 7)], "valid"), (20, 20, 3), 473_890),
    (convnet([(32, 3), (64, 5), (128, 7)], "same"), (20, 20, 3), 559_906),
    (convnet([(32, 3), (64, 5)], "same", pool=True), (20, 20, 3), 68_770),
    (convnet([(2, 3), (3, 3)], "same", dense=0), (20, 20, 3), 2_515),
    (lenet5(), (1, 32, 32), 61_706),
], ids=["mlp-2-3-2", "mlp-3-4-4-3", "convs-valid", "convs-same", "convs-pool", "tiny-convs",
        "lenet5"])
def test_the_course_parameter_counts(model, shape, total):
    s = summarize(model, shape)
    assert (s.total, s.trainable, s.non_trainable) == (total, total, 0)
    assert f"Total params: {total:,}" in s.text
    assert "Output Shape" in s.text and "no output shapes" not in s.text


def test_output_shapes_follow_the_padding():
    valid = summarize(convnet([(32, 3), (64, 5), (128, 7)], "valid"), (20, 20, 3)).text
    same = summarize(convnet([(32, 3), (64, 5), (128, 7)], "same"), (20, 20, 3)).text
    assert "[1, 20, 20, 16]" in valid  # the Dense acted on the channel axis
    assert "[1, 128, 8, 8]" in valid and "[1, 8192]" in valid  # 20 -> 18 -> 14 -> 8
    assert "[1, 128, 20, 20]" in same and "[1, 51200]" in same
    assert "[1, 10]" in summarize(lenet5(), (1, 32, 32)).text


def test_vgg16_features_frozen_with_a_new_head():
    from torchvision.models import vgg16

    features = vgg16(weights=None).features  # architecture only: nothing is downloaded
    features.requires_grad_(False)
    net = nn.Sequential(features, nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.ReLU(),
                        nn.Linear(512, 10))
    s = summarize(net, (3, 224, 224), depth=1)
    assert (s.total, s.trainable, s.non_trainable) == (27_565_386, 12_850_698, 14_714_688)
    assert "Non-trainable params: 14,714,688" in s.text
    assert "[1, 512, 7, 7]" in s.text


def test_summarising_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    model[1].eval()  # a mixed model: torchinfo alone would set every module to the root's mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    summarize(model, (4,))
    assert [m.training for m in model.modules()] == [True, True, False, True, True]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())  # a run's later random numbers unchanged


def test_a_model_that_cannot_take_the_input_still_gets_its_counts():
    s = summarize(mlp(16, 8, 2), (64,), name="generator")
    assert s.total == 16 * 8 + 8 + 8 * 2 + 2
    assert s.text.startswith("Model: generator\n(no output shapes: a forward pass on an input "
                             "of shape (1, 64) failed: RuntimeError")


def test_lab_summary_prints_the_layers_and_the_totals(cli):
    code, out, err = cli("summary", "digits-mlp")
    assert code == 0, err
    assert out.startswith("Model: digits-mlp\n")
    assert "Linear" in out and "[1, 64]" in out and "[1, 10]" in out
    # 64 -> 64 -> 10: 64*64+64 + 64*10+10
    assert "Total params: 4,810\nTrainable params: 4,810\nNon-trainable params: 0" in out
    code, out, _ = cli("summary", "digits-mlp", "--set", "hidden=[128]")
    assert code == 0 and "Total params: 9,610" in out and "[1, 128]" in out


def test_lab_summary_reads_a_config_file(cli, tmp_path):
    (tmp_path / "c.yaml").write_text("hidden: [32, 16]\n")
    code, out, _ = cli("summary", "digits-mlp", "--config", str(tmp_path / "c.yaml"))
    assert code == 0 and f"Total params: {64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10:,}" in out


@pytest.mark.parametrize("argv, message", [
    (("nope",), "error: unknown lab 'nope'"),
    (("digits-mlp", "--set", "hiden=[8]"), "error: unknown config key 'hiden' (--set). Did "
                                           "you mean 'hidden'?"),
    (("digits-mlp", "--set", "hidden=[0]"), "error: bad value for 'hidden' (--set)"),
    (("conv-arithmetic",), "error: conv-arithmetic defines no data(): nothing to summarise"),
    (("digits-mlp", "--depth", "-1"), "error: --depth must be >= 0, got -1"),
])
def test_lab_summary_refuses_in_one_line(cli, argv, message):
    code, out, err = cli("summary", *argv)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_help_stays_torch_free():
    code = ("import sys; from labs.cli import main\n"
            "for argv in (['--help'], ['summary', '--help']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            "print('HEAVY', [m for m in ('torch', 'torchinfo') if m in sys.modules])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "summary" in res.stdout and "HEAVY []" in res.stdout


def test_a_run_writes_summary_txt(cli, runs_dir):
    code, _, err = cli("run", "xor-mlp", "--epochs", "2", "--no-track", "--no-explain")
    assert code == 0, err
    (d,) = (runs_dir / "xor-mlp").iterdir()
    text = (d / "summary.txt").read_text()
    assert text.startswith("Model: xor-mlp\n")
    assert "Total params: 22" in text  # 2 -> 4 -> 2: 2*4+4 + 4*2+2
    assert "Output Shape" in text and "[1, 4]" in text


def test_a_summary_that_fails_never_fails_the_run(monkeypatch):
    from labs import summary

    def broken(*args, **kwargs):
        raise RuntimeError("torchinfo exploded")

    monkeypatch.setattr(summary, "summarize_all", broken)
    with pytest.warns(RuntimeWarning, match="no model summary.*torchinfo exploded"):
        res = run("xor-mlp", epochs=2, explain=False, track=False)
    assert "acc" in res.metrics and not (res.dir / "summary.txt").exists()
    assert rundir.read_summary(res.dir)["status"] == "completed"
