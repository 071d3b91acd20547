"""An MLP and a CNN, both trained on centred digits, tested on digits shifted by 0..3 pixels.

Neither network sees a shifted digit while training (no augmentation). A dense layer gives
every pixel position its own weights, so a digit moved by two pixels is a new input to the MLP.
A convolution applies the same filters everywhere (its feature maps move with the digit) and a
global max-pool then forgets where a feature was found, so the CNN's prediction changes much
less. On 8x8 digits a 3-pixel shift pushes a third of the digit out of the frame, so both
fall; the CNN falls less. `--set cnn_pool=flatten` gives the CNN digits-cnn's dense head
instead (position-specific weights again) and most of its advantage goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from labs import Lab, SplitConfig, datasets, images, models, option, plots, variants

DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # down, up, right, left


@dataclass
class Config(SplitConfig):
    hidden: list[int] = option([128], "the MLP's hidden layer widths", min=1)
    channels: list[int] = option([32, 32, 64], "the CNN's 3x3 'same' convolutions (a 2x2 "
                                               "max-pool after the second)", min=1)
    cnn_pool: Literal["global", "flatten"] = option(
        "global", "the CNN's head: a global max-pool (shift-invariant) or flatten + dense")
    max_shift: int = option(3, "test shifts 0..max_shift pixels (each in four directions)",
                            min=1, max=7)
    epochs: int = option(25, "passes over the (centred) training digits, for both models")
    lr: float = option(2e-3, "Adam's learning rate, for both models")


def cnn(channels: list[int], n_classes: int, pool: str = "global", side: int = 8
        ) -> nn.Sequential:
    """Flat side*side pixels -> [conv 3x3 'same' -> ReLU]* (2x2 max-pool after the second) ->
    global max-pool (or flatten) -> dropout -> logits."""
    layers: list[nn.Module] = [nn.Unflatten(1, (1, side, side))]
    c_in, s = 1, side
    for i, c in enumerate(channels):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
        if i == 1:
            layers.append(nn.MaxPool2d(2))
            s //= 2
        c_in = c
    head = c_in if pool == "global" else c_in * s * s
    layers += [nn.AdaptiveMaxPool2d(1) if pool == "global" else nn.Identity(), nn.Flatten(),
               nn.Dropout(0.25), nn.Linear(head, n_classes)]
    return nn.Sequential(*layers)


def shifted_accuracy(predict, x: torch.Tensor, y: torch.Tensor, k: int,
                     image_shape: tuple[int, ...]) -> tuple[float, np.ndarray]:
    """Mean accuracy over the four directions at a k-pixel shift, and the predictions for
    the digits moved k pixels right."""
    accs, right = [], None
    for dy, dx in DIRECTIONS:
        pred = predict(images.shift(x, dy * k, dx * k, image_shape)).argmax(-1).cpu()
        accs.append(float((pred == y).float().mean()))
        if (dy, dx) == (0, 1):
            right = pred.numpy()
    return float(np.mean(accs)), right


class MLPvsCNNShift(Lab):
    """An MLP and a CNN trained on centred 8x8 digits, tested on digits shifted by 0..3 pixels."""

    lesson = "cnn"
    tags = ("supervised", "cnn", "mlp", "images")
    explains = "image"
    headline = "cnn/acc_shift2"
    Config = Config

    def data(self, cfg: Config):
        # pixels in [0, 1], background 0: a shifted digit is padded with background
        return datasets.digits(test_size=cfg.test_size, val_size=cfg.val_size, scale="unit",
                               seed=cfg.seed)

    def model(self, cfg: Config, data) -> dict[str, nn.Module]:
        return {"mlp": models.mlp(data.n_features, cfg.hidden, data.n_classes, dropout=0.2),
                "cnn": cnn(cfg.channels, data.n_classes, cfg.cnn_pool, data.image_shape[0])}

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        results = variants.fit_all(run, self.model(cfg, data), data,
                                   loss=nn.CrossEntropyLoss())
        variants.log_table(run, "comparison", results)
        x, y, shape = data.test.x, data.test.y, data.image_shape
        acc: dict[str, list[float]] = {n: [] for n in results}
        at2: dict[str, np.ndarray] = {}
        metrics: dict[str, float] = {}
        for k in range(cfg.max_shift + 1):
            for n, r in results.items():
                a, right = shifted_accuracy(r.fit.trainer.predict, x, y, k, shape)
                acc[n].append(a)
                metrics[f"{n}/acc_shift{k}"] = a
                if k == min(2, cfg.max_shift):
                    at2[n] = right
            run.log({f"{n}/acc": acc[n][-1] for n in results}, step=k, axis="shift")
        run.figure("accuracy_vs_shift", shift_figure(acc))
        run.figure("shifted_digit", plots.image_grid(
            [data.display(images.shift(x[:1], 0, k, shape)[0].numpy())
             for k in range(cfg.max_shift + 1)],
            [f"shift {k}" for k in range(cfg.max_shift + 1)], cols=cfg.max_shift + 1,
            title="one test digit moved right"))
        k2 = min(2, cfg.max_shift)
        run.figure("per_class_shift", plots.per_class(
            y.numpy(), at2, data.class_names, title=f"accuracy per digit, moved {k2} px right"))
        run.figure("curves", variants.curves(results, "val_acc", title="validation accuracy"))
        return metrics


def shift_figure(acc: dict[str, list[float]]) -> object:
    """Test accuracy against the shift, one line per model."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.add_subplot()
    for n, values in acc.items():
        ax.plot(range(len(values)), values, marker="o", label=n)
    ax.axhline(0.1, color="gray", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(next(iter(acc.values())))))
    ax.set_xlabel("shift (pixels, mean of up / down / left / right)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("trained on centred digits, tested on shifted ones")
    return fig
