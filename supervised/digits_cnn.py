"""A small convolutional network on scikit-learn's 8x8 handwritten digits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from labs import Lab, SplitConfig, augmented_step, image_options, images, option, plots


@dataclass
class Config(image_options(), SplitConfig):  # dataset, data_dir, download
    channels: list[int] = option([32, 64], "filters of each 3x3 'same' convolution (ReLU "
                                           "after each; one 2x2 max-pool after the last)", min=1)
    dense: int = option(128, "units of the dense layer after the convolutions", min=1)
    conv_dropout: float = option(0.25, "dropout after the max-pool", min=0, lt=1)
    dropout: float = option(0.5, "dropout after the dense layer", min=0, lt=1)
    shift: int = option(1, "training augmentation: each digit moved by up to this many "
                           "pixels in each direction (0: off)", min=0, max=3)
    epochs: int = option(40, "passes over the training data")
    lr: float = option(3e-3, "peak learning rate of the one-cycle schedule")
    lr_schedule: str = option("onecycle", "learning-rate schedule (onecycle steps every batch)")


class ChannelsFirst(nn.Module):
    """(N, H, W, C) -> (N, C, H, W): colour images come flat in the files' (H, W, C) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


def unflatten(image_shape: tuple[int, ...]) -> list[nn.Module]:
    """Layers turning flat rows into (N, C, H, W) images: (H, W) is one grey channel,
    (H, W, C) is channels-last."""
    if len(image_shape) == 2:
        return [nn.Unflatten(1, (1, *image_shape))]
    return [nn.Unflatten(1, tuple(image_shape)), ChannelsFirst()]


def cnn(channels: list[int], dense: int, n_classes: int, conv_dropout: float = 0.25,
        dropout: float = 0.5, side: int = 8, image_shape: tuple[int, ...] | None = None
        ) -> nn.Sequential:
    """Flat pixels -> [conv 3x3 'same' -> ReLU]* -> max-pool 2x2 -> dropout -> dense -> ReLU
    -> dropout -> logits. Inputs stay flat, so LIME and `lab explain --input` treat it like
    any digits model. `image_shape` (H, W) or (H, W, C) (default side x side) sizes it for
    MNIST's 28x28 or CIFAR-10's 32x32x3."""
    shape = tuple(image_shape) if image_shape is not None else (side, side)
    layers: list[nn.Module] = unflatten(shape)
    c_in = shape[2] if len(shape) == 3 else 1
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
        c_in = c
    layers += [nn.MaxPool2d(2), nn.Dropout(conv_dropout), nn.Flatten(),
               nn.Linear(c_in * (shape[0] // 2) * (shape[1] // 2), dense), nn.ReLU(),
               nn.Dropout(dropout), nn.Linear(dense, n_classes)]
    return nn.Sequential(*layers)


def shifts(max_shift: int, image_shape: tuple[int, ...]):
    """The random-shift augmentation for flat images of `image_shape`; colour images
    ((H, W, C), channels-last) are moved along H and W, not along the channels."""
    if len(image_shape) == 2:
        return images.random_shifts(max_shift, image_shape)
    h, w, c = image_shape

    def transform(x: torch.Tensor) -> torch.Tensor:
        chw = x.reshape(len(x), h, w, c).permute(0, 3, 1, 2)
        return images.random_shift(chw, max_shift).permute(0, 2, 3, 1).reshape(x.shape)

    return transform


class DigitsCNN(Lab):
    """Convolutional network (conv -> ReLU -> max-pool -> dense -> softmax) on the 8x8 digits."""

    lesson = "cnn"
    tags = ("supervised", "cnn", "images")
    explains = "image"
    headline = "test_acc"
    Config = Config

    def data(self, cfg: Config):
        return cfg.load_images(scale="unit")

    def model(self, cfg: Config, data) -> nn.Module:
        return cnn(cfg.channels, cfg.dense, data.n_classes, cfg.conv_dropout, cfg.dropout,
                   image_shape=data.image_shape)

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        step = augmented_step(shifts(cfg.shift, data.image_shape))
        fit = run.fit(model, data, loss=nn.CrossEntropyLoss(), step=step)

        run.figure("curves", plots.curves(fit.history, title=f"digits-cnn ({cfg.dataset})"))
        pred = fit.trainer.predict(data.test.x).argmax(-1).cpu().numpy()
        true = data.test.y.numpy()
        run.figure("confusion", plots.confusion(true, pred, data.class_names))
        run.figure("per_class", plots.per_class(true, pred, data.class_names))
        convs = [m for m in model if isinstance(m, nn.Conv2d)]
        run.figure("filters", plots.filters(convs[0].weight, title="first-layer filters"))
        digit = data.test.x[:1]
        run.figure("feature_maps", plots.feature_maps(
            data.display(digit[0].numpy()), conv_activations(model, digit),
            title=f"feature maps of a test digit (true {true[0]}, predicted {pred[0]})"))
        return {"test_acc": fit.test["acc"], "test_loss": fit.test["loss"],
                "train_acc": fit.history.last.get("train_acc", float("nan"))}


def conv_activations(model: nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ReLU output of each convolution for one input `x` (a batch of 1), by layer."""
    maps = {}
    model.eval()
    with torch.no_grad():
        h = x.to(next(model.parameters()).device)
        for layer in model:
            h = layer(h)
            if isinstance(layer, nn.ReLU) and h.ndim == 4:
                maps[f"conv{len(maps) + 1}"] = h[0].cpu()
    return maps
