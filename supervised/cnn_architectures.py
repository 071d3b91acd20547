"""The classic CNN architectures, scaled down, on the digits at 32x32, and residual learning.

Five families on the same data (scikit-learn's 8x8 digits upsampled to LeNet's 32x32) and the
same budget (epochs, optimizer, schedule, batch): LeNet-5 (LeCun 1998, its 61,706 parameters),
AlexNet (Krizhevsky 2012: large first kernels, five convs, dropout-regularised dense layers),
VGG (Simonyan 2014: stacks of 3x3 convs doubling the width after each pool), an Inception net
(Szegedy 2014: 1x1, 3x3, 5x5 and pool->1x1 branches side by side, concatenated) and a ResNet
(He 2015: blocks that learn a residual added to their input). Widths are scaled down to train
in seconds on a CPU; the shapes of the ideas are kept.

Then the "degradation" demo of the ResNet paper: a deeper plain stack of convolutions ends
with a higher *training* error than a shallower one (so it is not overfitting), and the same
deep stack with identity shortcuts trains. Without batch normalization the deep plain stack's
signal and gradients shrink layer by layer, so here it barely leaves chance within the budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from labs import Lab, SplitConfig, datasets, option, plots, variants

ARCHITECTURES = ("lenet5", "alexnet", "vgg", "inception", "resnet")


@dataclass
class Config(SplitConfig):
    architectures: list[str] = option(list(ARCHITECTURES), "architectures to train and compare",
                                      choices=ARCHITECTURES)
    size: int = option(32, "side the 8x8 digits are upsampled to (LeNet-5 was built for 32)",
                       min=32, max=64)
    epochs: int = option(8, "passes over the training data, the same for every architecture")
    lr: float = option(3e-3, "Adam's learning rate (every model, the degradation stacks too)")
    degradation: bool = option(True, "also run the residual demo: a shallow plain, a deep "
                                     "plain and a deep residual stack of convolutions")
    shallow: int = option(2, "conv blocks (two 3x3 convs each) of the shallow plain stack",
                          min=1)
    deep: int = option(10, "conv blocks of the deep plain and the deep residual stacks", min=1)
    deg_width: int = option(16, "channels of the degradation stacks", min=1)
    deg_epochs: int = option(15, "epochs of each degradation stack", min=1)

    def validate(self) -> None:
        super().validate()
        from labs import ConfigError

        if not self.architectures and not self.degradation:
            raise ConfigError("nothing to train: architectures=[] and degradation=false")
        if self.degradation and self.shallow >= self.deep:
            raise ConfigError(f"the deep stack must be deeper: shallow={self.shallow} >= "
                              f"deep={self.deep}")


# -- the architectures: flat (n, side*side) digits in, logits out ------------------------------

def lenet5(side: int = 32, n_classes: int = 10) -> nn.Sequential:
    """LeNet-5: C1 6@5x5 -> S2 avg-pool -> C3 16@5x5 -> S4 -> F5 120 -> F6 84 -> 10, tanh.
    61,706 parameters at 32x32 (C3 fully connected to S2, unlike the 1998 paper's table)."""
    s = ((side - 4) // 2 - 4) // 2
    return nn.Sequential(nn.Unflatten(1, (1, side, side)),
                         nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(16 * s * s, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                         nn.Linear(84, n_classes))


def alexnet(side: int = 32, n_classes: int = 10) -> nn.Sequential:
    """AlexNet's shape at 1/8 of its widths: a large-kernel first conv, max-pools, three 3x3
    convs, then two dropout-regularised dense layers (ReLU throughout)."""
    conv = [nn.Unflatten(1, (1, side, side)),
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(),
            nn.Conv2d(48, 48, 3, padding=1), nn.ReLU(),
            nn.Conv2d(48, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    s = side // 8
    return nn.Sequential(*conv, nn.Dropout(0.5), nn.Linear(32 * s * s, 256), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, n_classes))


def vgg(side: int = 32, n_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64)
        ) -> nn.Sequential:
    """VGG's recipe: per stage two 3x3 'same' convs, then a 2x2 max-pool; widths double."""
    layers: list[nn.Module] = [nn.Unflatten(1, (1, side, side))]
    c = 1
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(),
                   nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = w
    s = side // 2 ** len(widths)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * s * s, 128), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(128, n_classes))


def conv_bn(c_in: int, c_out: int, k: int) -> nn.Sequential:
    """k x k 'same' conv -> batch norm -> ReLU (Inception v2's unit; without the norm this
    many-branch net barely moves within the shared budget)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class Inception(nn.Module):
    """One Inception block: four branches on the same input, concatenated on the channels.
    1x1; 1x1 -> 3x3; 1x1 -> 5x5 (the 1x1s shrink the channels first: cheap); 3x3 max-pool ->
    1x1. Every branch keeps the spatial size."""

    def __init__(self, c_in: int, c1: int, c3: tuple[int, int], c5: tuple[int, int],
                 pool: int):
        super().__init__()
        self.b1 = conv_bn(c_in, c1, 1)
        self.b3 = nn.Sequential(conv_bn(c_in, c3[0], 1), conv_bn(c3[0], c3[1], 3))
        self.b5 = nn.Sequential(conv_bn(c_in, c5[0], 1), conv_bn(c5[0], c5[1], 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_bn(c_in, pool, 1))
        self.out_channels = c1 + c3[1] + c5[1] + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


def inception(side: int = 32, n_classes: int = 10) -> nn.Sequential:
    """A stem conv and pool, two Inception blocks with a pool between them, global average
    pooling and one dense layer (GoogLeNet's head: no large dense layers)."""
    a = Inception(16, 16, (16, 24), (4, 8), 8)
    b = Inception(a.out_channels, 24, (24, 32), (8, 16), 16)
    return nn.Sequential(nn.Unflatten(1, (1, side, side)), conv_bn(1, 16, 3), nn.MaxPool2d(2),
                         a, nn.MaxPool2d(2), b, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(b.out_channels, n_classes))


class Residual(nn.Module):
    """conv 3x3 -> [BN] -> ReLU -> conv 3x3 -> [BN], plus the input (the shortcut), -> ReLU.
    A change of width or a stride puts a 1x1 conv on the shortcut; `residual=False` drops the
    shortcut (the 'plain' block of the degradation demo)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, *, residual: bool = True,
                 norm: bool = True):
        super().__init__()
        bn = (lambda c: nn.BatchNorm2d(c)) if norm else (lambda c: nn.Identity())
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not norm),
                                  bn(c_out), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1, bias=not norm), bn(c_out))
        self.residual = residual
        self.shortcut: nn.Module = nn.Identity()
        if residual and (stride != 1 or c_in != c_out):
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          bn(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return torch.relu(h + self.shortcut(x) if self.residual else h)


def resnet(side: int = 32, n_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64)
           ) -> nn.Sequential:
    """A small ResNet: a stem conv and max-pool (ResNet's stem halves the image too), one
    residual block per width (stride 2 from the second), batch normalization, global average
    pooling, one dense layer."""
    layers: list[nn.Module] = [nn.Unflatten(1, (1, side, side)),
                               nn.Conv2d(1, widths[0], 3, padding=1, bias=False),
                               nn.BatchNorm2d(widths[0]), nn.ReLU(), nn.MaxPool2d(2)]
    c = widths[0]
    for i, w in enumerate(widths):
        layers.append(Residual(c, w, stride=1 if i == 0 else 2))
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes))


BUILDERS = {"lenet5": lenet5, "alexnet": alexnet, "vgg": vgg, "inception": inception,
            "resnet": resnet}


def stack(blocks: int, width: int, side: int, *, residual: bool, n_classes: int = 10,
          pool_to: int = 8) -> nn.Sequential:
    """The degradation demo's network: average-pool the digits back to `pool_to` pixels a
    side (cheap), a stem conv, `blocks` two-conv blocks with or without shortcuts, no batch
    normalization, global average pooling, one dense layer. 2*blocks+1 conv layers."""
    return nn.Sequential(nn.Unflatten(1, (1, side, side)), nn.AdaptiveAvgPool2d(pool_to),
                         nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                         *[Residual(width, width, residual=residual, norm=False)
                           for _ in range(blocks)],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_classes))


def degradation_models(cfg: Config, side: int, n_classes: int = 10) -> dict[str, nn.Module]:
    """The three stacks by name: shallow plain, deep plain, deep residual."""
    depth = lambda blocks: 2 * blocks + 1  # noqa: E731 - conv layers of a stack
    return {f"plain-{depth(cfg.shallow)}": stack(cfg.shallow, cfg.deg_width, side,
                                                 residual=False, n_classes=n_classes),
            f"plain-{depth(cfg.deep)}": stack(cfg.deep, cfg.deg_width, side, residual=False,
                                              n_classes=n_classes),
            f"residual-{depth(cfg.deep)}": stack(cfg.deep, cfg.deg_width, side, residual=True,
                                                 n_classes=n_classes)}


class CNNArchitectures(Lab):
    """LeNet-5, AlexNet, VGG, Inception and ResNet (scaled down) on the digits at 32x32, and
    the residual degradation demo."""

    lesson = "cnn"
    tags = ("supervised", "cnn", "images", "architectures")
    explains = "image"
    headline = "best_test_acc"
    Config = Config

    def data(self, cfg: Config):
        return datasets.digits(test_size=cfg.test_size, val_size=cfg.val_size, scale="unit",
                               seed=cfg.seed, size=cfg.size)

    def model(self, cfg: Config, data) -> dict[str, nn.Module]:
        side, k = data.image_shape[0], data.n_classes
        models = {name: BUILDERS[name](side, k) for name in cfg.architectures}
        if cfg.degradation:
            models.update(degradation_models(cfg, side, k))
        return models

    def subjects(self, cfg: Config, model, data):
        # LIME explains the architectures; the degradation stacks are a training-error demo
        kept = {n: m for n, m in model.items() if n in ARCHITECTURES} or model
        return super().subjects(cfg, kept if len(kept) > 1 else next(iter(kept.values())),
                                data)

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        models = self.model(cfg, data)
        metrics: dict[str, float] = {}
        true = data.test.y.numpy()
        if cfg.degradation:
            metrics.update(self._degradation(cfg, run, data, models))
        if cfg.architectures:
            archs = {n: models[n] for n in cfg.architectures}
            # the same budget for all: epochs, Adam + one-cycle at cfg.lr, batch, data
            results = variants.fit_all(run, archs, data, loss=nn.CrossEntropyLoss())
            variants.log_table(run, "comparison", results,
                               columns=["params", "test_acc", "s_per_epoch", "train_acc",
                                        "test_loss"])
            run.figure("comparison", comparison_figure(results))
            run.figure("curves", variants.curves(results, "val_acc",
                                                 title="validation accuracy"))
            preds = {n: r.fit.trainer.predict(data.test.x).argmax(-1).cpu().numpy()
                     for n, r in results.items()}
            run.figure("per_class", plots.per_class(true, preds, data.class_names,
                                                    title="test accuracy per digit"))
            for n, r in results.items():
                metrics[f"{n}/test_acc"] = r.test["acc"]
                metrics[f"{n}/params"] = float(r.params)
                metrics[f"{n}/s_per_epoch"] = r.seconds / max(1, len(r.history.epochs))
            metrics["best_test_acc"] = max(r.test["acc"] for r in results.values())
        return metrics

    def _degradation(self, cfg: Config, run, data, models) -> dict[str, float]:
        names = list(degradation_models(cfg, data.image_shape[0], data.n_classes))
        # no validation split and no early stop: this is about fitting the training data
        train_only = dataclasses.replace(data, val=None)
        results = variants.fit_all(run, {n: models[n] for n in names}, train_only,
                                   loss=nn.CrossEntropyLoss(), epochs=cfg.deg_epochs,
                                   monitor="train_loss")
        errors = {}
        for n, r in results.items():
            r.fit.model.eval()
            pred = r.fit.trainer.predict(data.train.x).argmax(-1).cpu()
            errors[n] = float((pred != data.train.y).float().mean())
        run.figure("degradation", degradation_figure(results, errors))
        shallow, deep, res = names
        return {"train_error/shallow_plain": errors[shallow],
                "train_error/deep_plain": errors[deep],
                "train_error/deep_residual": errors[res]}


def comparison_figure(results) -> object:
    """Three panels: parameters (log scale), test accuracy, seconds per epoch."""
    from matplotlib.figure import Figure

    names = list(results)
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    panels = [("parameters", [r.params for r in results.values()], True),
              ("test accuracy", [r.test["acc"] for r in results.values()], False),
              ("seconds per epoch", [r.seconds / max(1, len(r.history.epochs))
                                     for r in results.values()], False)]
    for i, (label, values, log) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        bars = ax.bar(names, values, color=[f"C{j}" for j in range(len(names))])
        ax.bar_label(bars, [f"{v:,.0f}" if log else f"{v:.3g}" for v in values], fontsize=7)
        if log:
            ax.set_yscale("log")
        if label == "test accuracy":
            ax.set_ylim(max(0.0, min(values) - 0.1), 1.0)
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=30)
        ax.grid(alpha=0.3, axis="y")
    return fig


def degradation_figure(results, errors: dict[str, float]) -> object:
    """Training loss per epoch of the three stacks, and their final training error."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    for n, r in results.items():
        pts = [(e["epoch"], e["train_loss"]) for e in r.history.epochs if "train_loss" in e]
        if pts:
            ax.plot(*zip(*pts), label=n)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("deeper plain stacks train worse")
    ax = fig.add_subplot(1, 2, 2)
    bars = ax.bar(list(errors), list(errors.values()), color=["C0", "C3", "C2"])
    ax.bar_label(bars, [f"{v:.3f}" for v in errors.values()], fontsize=8)
    ax.axhline(0.9, color="gray", ls="--", lw=1, label="chance (10 classes)")
    ax.set_ylabel("training error (eval mode)")
    ax.legend(fontsize=8)
    ax.set_title("final training error")
    return fig
