"""transfer-cnn: the offline default (pretrain on digits 0-4, transfer to 5-9), reuse of an
earlier run's backbone, a real torchvision backbone from a weights file, and the summary."""

from __future__ import annotations

import json

import pytest
import torch

from labs import backbones, checkpoint, run

TINY = dict(track=False, progress=False, labels=[1, 2], seeds=1, epochs=3, warmup_epochs=1,
            source_epochs=2, head=16)


def test_smoke_pretrains_transfers_and_records_the_strategies(tmp_path):
    res = run("transfer-cnn", runs_dir=tmp_path, explain_samples=1, explain_num_samples=50,
              **TINY)
    m = res.metrics
    for s in ("scratch", "features", "finetune"):
        for n in (1, 2):
            assert 0.0 <= m[f"{s}_acc_n{n}"] <= 1.0
    assert m["transfer_gain"] == pytest.approx(
        max(m["features_acc_n1"], m["finetune_acc_n1"]) - m["scratch_acc_n1"])
    assert 0.2 < m["source_acc"] <= 1.0  # 5 source classes: above chance after 2 epochs
    assert m["finetune_lr_body"] == pytest.approx(0.1 * m["finetune_lr_head"])
    assert m["scratch_frozen"] == 0 and m["features_frozen"] > m["finetune_frozen"] > 0
    for fig in ("accuracy_vs_labels", "gradcam_vs_lime"):
        assert (res.dir / "figures" / f"{fig}.png").is_file()
    record = json.loads((res.dir / "strategies.json").read_text())["strategies"]
    assert record["features"]["frozen_layers"][0] == "body.block1.0"
    assert not any(f.startswith("body.block3") for f in record["finetune"]["frozen_layers"])
    assert record["finetune"]["unfrozen_blocks"] == ["block3"]
    import yaml  # the same facts with the run's config (and W&B's)

    kept = yaml.safe_load((res.dir / "config.yaml").read_text())["recorded"]["strategies"]
    assert kept["features"]["frozen_layers"] == record["features"]["frozen_layers"]
    assert kept["finetune"]["lr_groups"] == record["finetune"]["lr_groups"]
    assert set(res.models) == {"scratch", "features", "finetune"}
    assert (res.dir / "checkpoints" / "backbone.pt").is_file()
    # the head-only warm-up and the fine-tuning phase are two named fits; lr per group logged
    rows = [json.loads(line) for line in (res.dir / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert "n1/s0/finetune-warmup/train_loss" in keys
    assert "n1/s0/finetune/lr/group1" in keys and "n1/s0/features/lr/group1" not in keys
    # frozen BatchNorm kept its pretrained running statistics
    body = checkpoint.load(res.dir / "checkpoints" / "backbone.pt")["model"]
    feats = res.models["features"].body.state_dict()
    assert torch.equal(feats["block1.1.running_mean"].cpu(), body["block1.1.running_mean"])


def test_source_run_reuses_the_backbone_and_refuses_a_run_without_one(tmp_path, cli):
    first = run("transfer-cnn", runs_dir=tmp_path, explain=False, strategies=["features"],
                **TINY)
    second = run("transfer-cnn", runs_dir=tmp_path, explain=False, strategies=["features"],
                 source_run=str(first.dir), **TINY)
    assert not (second.dir / "checkpoints" / "source").exists()  # no pretraining again
    a = checkpoint.load(first.dir / "checkpoints" / "backbone.pt")["model"]
    b = second.models["features"].body.state_dict()
    assert all(torch.equal(a[k], b[k].cpu()) for k in a)
    assert second.metrics["source_acc"] == pytest.approx(first.metrics["source_acc"])

    other = run("xor-mlp", runs_dir=tmp_path, epochs=1, explain=False, track=False)
    code, out, err = cli("run", "transfer-cnn", "--no-track", "--set",
                         f"source_run={other.dir}")
    assert code == 2 and err.count("\n") == 1
    assert "has no pretrained backbone" in err


def test_a_torchvision_backbone_from_a_weights_file(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(backbones.architecture("resnet18").state_dict(), weights)
    res = run("transfer-cnn", runs_dir=tmp_path, explain=False, backbone="resnet18",
              weights=str(weights), image_size=32, **{**TINY, "labels": [1]})
    assert 0.0 <= res.metrics["finetune_acc_n1"] <= 1.0
    assert res.models["finetune"].head[-1].out_features == 10  # ImageNet -> all ten digits
    record = json.loads((res.dir / "strategies.json").read_text())
    assert record["source"] == str(weights)
    assert record["strategies"]["finetune"]["unfrozen_blocks"] == ["layer4"]
    # the trained run no longer needs the pretrained file: `lab eval` works without it
    weights.unlink()
    from labs.reload import evaluate_saved

    _, scores = evaluate_saved(str(res.dir))
    assert scores["finetune/test_acc"] == pytest.approx(res.metrics["finetune_acc_n1"])


def test_no_weights_offline_is_one_line(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(backbones, "online", lambda timeout=3.0: False)
    code, out, err = cli("run", "transfer-cnn", "--no-track", "--set", "backbone=resnet18")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "resnet18-f37072fd.pth" in err and "weights=path.pth" in err
    assert not (tmp_path / "runs").exists()  # refused before a run directory


def test_lab_summary_shows_trainable_and_frozen_counts(cli):
    # the numbers tests/test_summary.py pins for VGG16 features + Dense(512) + Dense(10)
    code, out, err = cli("summary", "transfer-cnn", "--set", "backbone=vgg16", "--set",
                         "weights=random", "--set", "strategies=[features]")
    assert code == 0, err
    assert ("Total params: 27,565,386\nTrainable params: 12,850,698\n"
            "Non-trainable params: 14,714,688") in out
    assert "[1, 3, 224, 224]" in out


@pytest.mark.slow
def test_transfer_beats_scratch_with_one_label_per_class(tmp_path):
    res = run("transfer-cnn", runs_dir=tmp_path, track=False, progress=False, explain=False,
              labels=[1], seeds=3)
    m = res.metrics
    best = max(m["features_acc_n1"], m["finetune_acc_n1"])
    assert best >= m["scratch_acc_n1"] + 0.03, m
