"""`labs.backbones`: torchvision backbones and their weights (a file, torch's hub cache, or one
line saying where to put the file), input pipelines, freezing and parameter groups."""

from __future__ import annotations

import pytest
import torch

from labs import backbones
from labs.errors import ConfigError, DataNotFound


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty hub cache and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(backbones, "online", lambda timeout=3.0: False)
    return tmp_path / "torch-home" / "hub" / "checkpoints"


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vgg11"])
def test_a_saved_state_dict_loads_through_the_weights_path(name, tmp_path, offline):
    torch.manual_seed(0)
    saved = backbones.architecture(name).state_dict()
    path = tmp_path / f"{name}.pth"
    torch.save(saved, path)
    state = backbones.pretrained_state(name, str(path))
    body, width = backbones.body(name, state)
    # the body holds exactly the saved tensors (the classifier is left out)
    first = next(iter(body.state_dict().values()))
    assert torch.equal(first, next(iter(saved.values())))
    x = torch.rand(2, 64)
    out = body(backbones.pipeline(name, (8, 8), 32)(x))
    assert out.flatten(1).shape == (2, width)


def test_the_hub_cache_file_is_found_by_torchvisions_name(tmp_path, offline):
    offline.mkdir(parents=True)
    assert backbones.cache_file("resnet18") == offline / "resnet18-f37072fd.pth"
    torch.save(backbones.architecture("resnet18").state_dict(), offline / "resnet18-f37072fd.pth")
    assert backbones.locate("resnet18", None) == offline / "resnet18-f37072fd.pth"


def test_no_weights_and_no_network_is_one_line_naming_the_file(offline):
    with pytest.raises(DataNotFound) as e:
        backbones.locate("vgg11", None)
    msg = str(e.value)
    assert "\n" not in msg
    assert "vgg11-8a719046.pth" in msg and str(offline) in msg and "weights=path.pth" in msg


def test_online_without_a_cache_means_a_download(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(backbones, "online", lambda timeout=3.0: True)
    assert backbones.locate("resnet18", None) == "download"


def test_random_is_asked_for_never_a_fallback(offline):
    assert backbones.locate("resnet18", "random") == "random"
    assert backbones.pretrained_state("resnet18", "random") is None


def test_wrong_files_are_refused_with_a_clear_line(tmp_path):
    other = tmp_path / "mobilenet.pth"
    torch.save(backbones.architecture("mobilenet_v3_small").state_dict(), other)
    with pytest.raises(ConfigError, match=r"does not hold resnet18 weights: .*missing"):
        backbones.locate("resnet18", str(other))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 this is not a checkpoint")
    with pytest.raises(ConfigError, match="is not a PyTorch checkpoint"):
        backbones.locate("resnet18", str(garbage))
    with pytest.raises(ConfigError, match="no such file"):
        backbones.locate("resnet18", str(tmp_path / "missing.pth"))
    vgg16 = tmp_path / "vgg16.pth"  # same keys as vgg11? no: more layers, other shapes
    torch.save(backbones.architecture("vgg16").state_dict(), vgg16)
    with pytest.raises(ConfigError, match="does not hold vgg11 weights"):
        backbones.locate("vgg11", str(vgg16))


def test_the_pipeline_follows_the_weights_metadata():
    p = backbones.pipeline("resnet18", (8, 8))
    assert p.size == 224  # the weights' crop size
    out = p(torch.full((1, 64), 0.5))
    assert out.shape == (1, 3, 224, 224)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    want = torch.tensor([(0.5 - m) / s for m, s in zip(mean, std)])
    assert torch.allclose(out[0, :, 100, 100], want, atol=1e-4)


def test_freezing_groups_and_frozen_batchnorm():
    body, width = backbones.body("resnet18")
    net = backbones.TransferNet(backbones.pipeline("resnet18", (8, 8), 32), body, width, 16, 3)
    backbones.freeze(net.body)
    assert backbones.unfreeze_last(net, 1) == ["layer4"]
    frozen = backbones.frozen_layers(net)
    assert "body.stem.0" in frozen and not any(f.startswith("body.layer4") for f in frozen)
    groups = backbones.param_groups(net, 1e-2, 0.1)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 1e-2), ("body", 1e-3)]
    assert sum(p.numel() for g in groups for p in g["params"]) == \
        backbones.counts(net)["trainable"]

    class T:
        model = net

    net.train()
    backbones.FrozenBatchNorm().on_epoch_start(T, 0)
    assert not net.body.stem[1].training  # frozen BN: running statistics kept
    assert net.body.layer4[0].bn1.training  # unfrozen BN trains


def test_augmentations_keep_the_shape():
    x = torch.rand(5, 64)
    for kind in backbones.AUGMENTATIONS:
        assert backbones.augmentation(kind, (8, 8))(x).shape == x.shape
    torch.manual_seed(0)
    assert not torch.equal(backbones.augmentation("rotate", (8, 8))(x), x)

