"""A small convolutional network on scikit-learn's 8x8 handwritten digits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from labs import Lab, SplitConfig, augmented_step, datasets, images, option, plots


@dataclass
class Config(SplitConfig):
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


def cnn(channels: list[int], dense: int, n_classes: int, conv_dropout: float = 0.25,
        dropout: float = 0.5, side: int = 8) -> nn.Sequential:
    """Flat side*side pixels -> [conv 3x3 'same' -> ReLU]* -> max-pool 2x2 -> dropout ->
    dense -> ReLU -> dropout -> logits. Inputs stay flat, so LIME and `lab explain --input`
    treat it like any digits model."""
    layers: list[nn.Module] = [nn.Unflatten(1, (1, side, side))]
    c_in = 1
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
        c_in = c
    layers += [nn.MaxPool2d(2), nn.Dropout(conv_dropout), nn.Flatten(),
               nn.Linear(c_in * (side // 2) ** 2, dense), nn.ReLU(), nn.Dropout(dropout),
               nn.Linear(dense, n_classes)]
    return nn.Sequential(*layers)


class DigitsCNN(Lab):
    """Convolutional network (conv -> ReLU -> max-pool -> dense -> softmax) on the 8x8 digits."""

    lesson = "cnn"
    tags = ("supervised", "cnn", "images")
    explains = "image"
    headline = "test_acc"
    Config = Config

    def data(self, cfg: Config):
        return datasets.digits(test_size=cfg.test_size, val_size=cfg.val_size, scale="unit",
                               seed=cfg.seed)

    def model(self, cfg: Config, data) -> nn.Module:
        return cnn(cfg.channels, cfg.dense, data.n_classes, cfg.conv_dropout, cfg.dropout)

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        step = augmented_step(images.random_shifts(cfg.shift, data.image_shape))
        fit = run.fit(model, data, loss=nn.CrossEntropyLoss(), step=step)

        run.figure("curves", plots.curves(fit.history, title="digits-cnn"))
        pred = fit.trainer.predict(data.test.x).argmax(-1).cpu().numpy()
        true = data.test.y.numpy()
        run.figure("confusion", plots.confusion(true, pred, data.class_names))
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
