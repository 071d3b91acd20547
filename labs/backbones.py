"""Pretrained backbones for transfer learning: torchvision architectures, their standard weights
(torch's hub cache, a file, or a download when online), the input pipeline each one expects,
freezing with BatchNorm kept in eval mode, and parameter groups with their own learning rates.

A backbone here is the network without its classifier, as an `nn.Sequential` of named blocks
(the unit `unfreeze` counts), followed by its global pooling:

>>> body, width = backbones.body("resnet18", backbones.pretrained_state("resnet18", None))
>>> net = backbones.TransferNet(backbones.pipeline("resnet18", (8, 8)), body, width, 512, 10)
>>> backbones.freeze(net.body); net_groups = backbones.param_groups(net, 1, 1e-3, 0.1)

Weights never arrive silently random: `locate` finds them or raises `DataNotFound` naming the
file to put where; `weights="random"` asks for an untrained backbone explicitly.
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labs.errors import CheckpointError, ConfigError, DataNotFound
from labs.trainer import Callback

ARCHITECTURES = ("resnet18", "mobilenet_v3_small", "vgg11", "vgg16")
RANDOM = "random"  # weights=random: an untrained backbone, asked for (architecture only)
# width of the flattened output of each body (after its pooling)
WIDTH = {"resnet18": 512, "mobilenet_v3_small": 576, "vgg11": 512 * 7 * 7,
         "vgg16": 512 * 7 * 7}
DOWNLOAD_HOST = ("download.pytorch.org", 443)


# -- weights ------------------------------------------------------------------------------------

def _check_name(name: str) -> None:
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown backbone '{name}': choose one of {', '.join(ARCHITECTURES)}")


def weights_enum(name: str) -> Any:
    """torchvision's standard (DEFAULT) weights entry of architecture `name`."""
    from torchvision.models import get_model_weights

    _check_name(name)
    return get_model_weights(name).DEFAULT


def cache_file(name: str) -> Path:
    """Where torch's hub cache keeps `name`'s standard weights (the file torchvision names)."""
    url = weights_enum(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def online(timeout: float = 3.0) -> bool:
    """Whether the weights server answers (a TCP connection, no download)."""
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def locate(name: str, weights: str | None) -> str | Path:
    """Where `name`'s weights will come from: a file, "download", or "random" (asked for).

    `weights` is a path, None (torch's hub cache, else a download when online) or "random".
    Raises `DataNotFound` (one line: which file to put where) when none is available, and a
    `ConfigError` for a file that is missing, not a checkpoint or of another architecture.
    """
    _check_name(name)
    if weights == RANDOM:
        return RANDOM
    if weights:
        path = Path(weights).expanduser()
        check_file(name, path)
        return path
    cached = cache_file(name)
    if cached.is_file():
        return cached
    if online():
        return "download"
    raise DataNotFound(
        f"no pretrained {name} weights here and no network: put {cached.name} (from "
        f"{weights_enum(name).url}) in {cached.parent}/, or pass --set weights=path.pth "
        f"(--set weights={RANDOM} for an untrained backbone)")


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: a plain `torch.save(model.state_dict())` (torchvision's own
    files) or this framework's `{"model": state_dict}`; a `ConfigError` names what is wrong."""
    from labs import checkpoint

    try:
        state = checkpoint.load(path)
    except CheckpointError as e:
        raise ConfigError(f"weights={path}: {e}") from None
    if isinstance(state.get("model"), dict):
        state = state["model"]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"weights={path}: not a state dict (it holds "
                          f"{', '.join(map(str, list(state)[:5]))})")
    return state


def check_state(name: str, state: dict[str, torch.Tensor], where: str) -> None:
    """Refuse a state dict that is not the full torchvision `name` model's (keys and shapes),
    without building real weights (the architecture is built on the meta device)."""
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in architecture(name).state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    wrong = [k for k in want.keys() & have.keys() if want[k] != have[k]]
    if missing or extra or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
                 f"{len(wrong)} of another shape (e.g. {sorted(wrong)[0]})" if wrong else ""]
        raise ConfigError(f"{where} does not hold {name} weights: "
                          f"{', '.join(p for p in parts if p)} tensors")


def check_file(name: str, path: Path) -> None:
    """A weights file that exists, is a PyTorch state dict and fits `name`."""
    if not path.is_file():
        raise ConfigError(f"weights={path}: no such file")
    check_state(name, read_state(path), f"weights={path}")


def pretrained_state(name: str, weights: str | None) -> dict[str, torch.Tensor] | None:
    """The full torchvision model's state dict from wherever `locate` finds it (None for
    "random"); a failed download is a `DataNotFound` naming the file to put in place."""
    where = locate(name, weights)
    if where == RANDOM:
        return None
    if where == "download":
        url = weights_enum(name).url
        try:
            return torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True)
        except Exception as e:  # network, disk or hash: the user can put the file in place
            raise DataNotFound(f"downloading {url} failed ({type(e).__name__}); put the file "
                               f"in {cache_file(name).parent}/ or pass --set "
                               f"weights=path.pth") from None
    state = read_state(Path(where))
    check_state(name, state, str(where))
    return state


# -- architectures ------------------------------------------------------------------------------

def architecture(name: str) -> nn.Module:
    """The full torchvision model `name`, untrained (nothing is downloaded)."""
    from torchvision.models import get_model

    _check_name(name)
    return get_model(name, weights=None)


def body(name: str, state: dict[str, torch.Tensor] | None = None) -> tuple[nn.Sequential, int]:
    """(the network without its classifier as named blocks ending in its pooling, the width
    of its flattened output). `state` (the full model's state dict) is loaded first."""
    net = architecture(name)
    if state is not None:
        net.load_state_dict(state)
    if name == "resnet18":
        blocks = OrderedDict(stem=nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
                             layer1=net.layer1, layer2=net.layer2, layer3=net.layer3,
                             layer4=net.layer4)
    elif name == "mobilenet_v3_small":
        blocks = OrderedDict((f"block{i}", m) for i, m in enumerate(net.features))
    else:  # VGG: one block per stage, each ending in its max-pool
        blocks, stage = OrderedDict(), []
        for m in net.features:
            stage.append(m)
            if isinstance(m, nn.MaxPool2d):
                blocks[f"stage{len(blocks) + 1}"] = nn.Sequential(*stage)
                stage = []
    blocks["pool"] = net.avgpool
    return nn.Sequential(blocks), WIDTH[name]


class InputPipeline(nn.Module):
    """Images (flat or (C, H, W)) -> what a pretrained backbone expects: resized to `size`
    (torchvision's resize, antialiased), three channels, normalized with the weights' mean and
    std. A module, so LIME, Grad-CAM and `lab explain --input` see the raw images."""

    def __init__(self, image_shape: Sequence[int], size: int, mean: Sequence[float],
                 std: Sequence[float], interpolation: Any = None):
        super().__init__()
        self.image_shape = tuple(image_shape) if len(image_shape) == 3 else (1, *image_shape)
        self.size = int(size)
        self.interpolation = interpolation
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        x = x.reshape(len(x), *self.image_shape)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.resize(x, [self.size, self.size],
                         interpolation=self.interpolation or InterpolationMode.BILINEAR,
                         antialias=True)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"{self.image_shape} -> (3, {self.size}, {self.size}), normalized"


def pipeline(name: str, image_shape: Sequence[int], size: int = 0) -> InputPipeline:
    """The input pipeline of `name`'s standard weights (their `transforms()`: crop size, mean,
    std, interpolation); `size` > 0 replaces the crop size (smaller: faster on a CPU)."""
    t = weights_enum(name).transforms()
    return InputPipeline(image_shape, size or t.crop_size[0], t.mean, t.std, t.interpolation)


class TransferNet(nn.Module):
    """pipeline -> body (pretrained blocks) -> head: Flatten -> Dense(`hidden`) -> ReLU ->
    Dense(`n_classes`) (`hidden` 0: one Dense)."""

    def __init__(self, pipeline: nn.Module, body: nn.Sequential, width: int, hidden: int,
                 n_classes: int):
        super().__init__()
        self.pipeline, self.body = pipeline, body
        layers: list[nn.Module] = [nn.Flatten()]
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)] if hidden \
            else [nn.Linear(width, n_classes)]
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.pipeline(x)))

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The body's blocks that hold parameters, first to last (what `unfreeze` counts)."""
        return [(n, m) for n, m in self.body.named_children()
                if any(True for _ in m.parameters())]


# -- freezing and parameter groups --------------------------------------------------------------

def freeze(module: nn.Module, frozen: bool = True) -> nn.Module:
    """Stop (or restart) gradients to every parameter of `module`."""
    module.requires_grad_(not frozen)
    return module


def unfreeze_last(net: TransferNet, k: int) -> list[str]:
    """Unfreeze the body's last `k` blocks; returns their names."""
    names = []
    for name, block in net.blocks()[-k:] if k > 0 else []:
        freeze(block, False)
        names.append(name)
    return names


def frozen_layers(net: nn.Module) -> list[str]:
    """Names of the modules whose every direct parameter is frozen."""
    out = []
    for name, m in net.named_modules():
        params = list(m.parameters(recurse=False))
        if params and not any(p.requires_grad for p in params):
            out.append(name)
    return out


def counts(net: nn.Module) -> dict[str, int]:
    """Trainable and frozen parameter counts."""
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    return {"trainable": trainable, "frozen": total - trainable}


def param_groups(net: TransferNet, lr: float, body_scale: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the head at `lr` (group 0), then the body's trainable
    blocks at `lr * body_scale` (group 1), so fine-tuning moves pretrained weights gently."""
    groups = [{"params": [p for p in net.head.parameters() if p.requires_grad], "lr": lr,
               "name": "head"}]
    body = [p for p in net.body.parameters() if p.requires_grad]
    if body:
        groups.append({"params": body, "lr": lr * body_scale, "name": "body"})
    return groups


class FrozenBatchNorm(Callback):
    """Keep the BatchNorm layers whose parameters are frozen in eval mode during training:
    a frozen backbone must use its pretrained running statistics, not update them from a few
    labelled samples (the trainer calls model.train() each epoch; this runs after it)."""

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        for m in trainer.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if not any(p.requires_grad for p in m.parameters()):
                    m.eval()


# -- augmentation -------------------------------------------------------------------------------

AUGMENTATIONS = ("none", "shift", "rotate", "affine")


def augmentation(kind: str, image_shape: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch transform (for `labs.augmented_step`) from torchvision's transforms, applied
    per image (torchvision draws one set of random parameters per call): `shift` moves by up
    to 1/8 of the side, `rotate` turns by up to 10 degrees, `affine` does both and scales by
    0.9-1.1. Inputs keep their shape (flat stays flat)."""
    from torchvision.transforms import v2

    if kind not in AUGMENTATIONS:
        raise ConfigError(f"unknown augmentation '{kind}': choose one of "
                          f"{', '.join(AUGMENTATIONS)}")
    if kind == "none":
        return lambda x: x
    shape = tuple(image_shape) if len(image_shape) == 3 else (1, *image_shape)
    t = {"shift": v2.RandomAffine(0, translate=(0.125, 0.125)),
         "rotate": v2.RandomRotation(10),
         "affine": v2.RandomAffine(10, translate=(0.125, 0.125), scale=(0.9, 1.1))}[kind]

    def apply(x: torch.Tensor) -> torch.Tensor:
        imgs = x.reshape(len(x), *shape)
        return torch.stack([t(img) for img in imgs]).reshape(x.shape)

    return apply


# -- artifacts of earlier runs ------------------------------------------------------------------

def run_artifact(ref: str, lab: str, file: str, what: str) -> Path:
    """`file` inside the earlier run `ref` of `lab` (a path, `<lab>/<id>` or an id under the
    runs folder); a `ConfigError` says when the run or the file is not there."""
    from labs import rundir
    from labs.errors import RunNotFound

    try:
        path = rundir.find(ref, lab)
    except RunNotFound as e:
        raise ConfigError(f"source_run={ref}: {e}") from None
    artifact = path / file
    if not artifact.is_file():
        raise ConfigError(f"source_run={ref}: run {path} has no {what} ({file} is missing: "
                          f"it did not pretrain one)")
    return artifact
