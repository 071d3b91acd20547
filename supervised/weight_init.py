"""The same deep MLP initialised six ways, on the 8x8 digits.

- zeros and a constant: every hidden unit computes the same thing and gets the same gradient,
  so they stay identical however long the network trains (symmetry is never broken; with
  zeros the hidden weights do not even move);
- tiny weights (std 0.01): the activations shrink layer by layer towards zero;
- too-large weights (std 1): tanh units saturate at -1 and 1, ReLU activations explode;
- Xavier/Glorot (for tanh) and He/Kaiming (for ReLU): the activations' spread stays about the
  same from layer to layer, and so does the gradient's.

Figures: per-layer histograms of the activations and the weight gradients at initialization,
their spread per layer for every scheme, and the learning curves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labs import Lab, SplitConfig, datasets, option, probes, variants

# scheme: (initializer of a Linear layer's weight, activation)
SCHEMES = {
    "zeros": ("zeros", "tanh"),
    "constant": ("constant", "tanh"),
    "small": ("small", "tanh"),
    "large_tanh": ("large", "tanh"),
    "large_relu": ("large", "relu"),
    "xavier_tanh": ("xavier", "tanh"),
    "he_relu": ("he", "relu"),
}
ACTS = {"tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass
class Config(SplitConfig):
    schemes: list[str] = option(list(SCHEMES), "initializations to compare",
                                choices=tuple(SCHEMES))
    depth: int = option(6, "hidden layers", min=1)
    width: int = option(64, "units per hidden layer", min=1)
    epochs: int = option(20, "passes over the training data")
    lr: float = option(0.02, "learning rate of SGD with momentum 0.9")
    momentum: float = option(0.9, "SGD momentum", min=0, lt=1)


def init_linear(layer: nn.Linear, how: str) -> None:
    """Initialise one layer's weight by `how`; biases start at zero in every scheme."""
    w = layer.weight
    with torch.no_grad():
        if how == "zeros":
            w.zero_()
        elif how == "constant":
            w.fill_(0.05)
        elif how == "small":
            w.normal_(0, 0.01)
        elif how == "large":
            w.normal_(0, 1.0)
        elif how == "xavier":
            nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain("tanh"))
        elif how == "he":
            nn.init.kaiming_normal_(w, nonlinearity="relu")
        else:
            raise ValueError(f"unknown initialization '{how}'")
        layer.bias.zero_()


def build(n_in: int, n_out: int, cfg: Config, scheme: str) -> nn.Sequential:
    how, act = SCHEMES[scheme]
    layers: list[nn.Module] = []
    for i in range(cfg.depth):
        layers += [nn.Linear(n_in if i == 0 else cfg.width, cfg.width), ACTS[act]()]
    layers.append(nn.Linear(cfg.width, n_out))
    model = nn.Sequential(*layers)
    for m in model:
        if isinstance(m, nn.Linear):
            init_linear(m, how)
    return model


def unit_spread(model: nn.Sequential) -> float:
    """The largest difference between two units of any hidden layer's weights (0: every unit
    of every hidden layer is a copy of the others)."""
    hidden = [m for m in model if isinstance(m, nn.Linear)][:-1]
    return max(float((m.weight - m.weight[:1]).abs().max().detach()) for m in hidden)


class WeightInit(Lab):
    """One deep MLP initialised seven ways: symmetry, saturation, explosion, Xavier and He.

    One deep MLP initialised with zeros, a constant, tiny, too-large, Xavier and He
    weights: symmetry, saturation, explosion; activation and gradient histograms; curves.
    """

    lesson = "initialization"
    tags = ("supervised", "mlp", "basics", "initialization")
    explains = "none"
    headline = "he_relu/test_acc"
    Config = Config

    def data(self, cfg: Config):
        return datasets.digits(test_size=cfg.test_size, val_size=cfg.val_size, seed=cfg.seed)

    def model(self, cfg: Config, data) -> dict[str, nn.Module]:
        return {s: build(data.n_features, data.n_classes, cfg, s) for s in cfg.schemes}

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        loss = nn.CrossEntropyLoss()
        x, y = data.train.x[:512], data.train.y[:512]  # a fixed probe batch
        at_init: dict[str, dict] = {}
        metrics: dict[str, float] = {}

        def variant(scheme: str):
            def make():
                torch.manual_seed(cfg.seed)
                model = build(data.n_features, data.n_classes, cfg, scheme)
                acts = probes.activations(model, x)
                grads = probes.gradients(model, loss, x, y)
                at_init[scheme] = {"acts": acts, "grads": grads,
                                   "weights": [m.weight.detach().clone() for m in model
                                               if isinstance(m, nn.Linear)]}
                opt = torch.optim.SGD(model.parameters(), cfg.lr, momentum=cfg.momentum)
                return variants.Variant(model, fit={"optimizer": opt})
            return make

        results = variants.fit_all(run, {s: variant(s) for s in cfg.schemes}, data, loss=loss,
                                   diverged="report")
        variants.log_table(run, "comparison", results,
                           ["train_loss", "train_acc", "test_acc", "seconds"])
        run.figure("val_loss", variants.curves(results, "val_loss", logy=True,
                                                title="validation loss"))
        run.figure("val_acc", variants.curves(results, "val_acc", title="validation accuracy"))
        run.figure("spread", spread_figure(at_init))
        run.figure("activations", probes.histogram_grid(
            {s: d["acts"] for s, d in at_init.items()}, xlabel="activation",
            title="activations per hidden layer at initialization (one row per scheme)"))
        run.figure("gradients", probes.histogram_grid(
            {s: d["grads"] for s, d in at_init.items()}, xlabel="dLoss/dW",
            title="weight gradients per layer at initialization (one row per scheme)"))

        for s, r in results.items():
            acts = list(at_init[s]["acts"].values())
            metrics[f"{s}/act_std_first"] = float(acts[0].std())
            metrics[f"{s}/act_std_last"] = float(acts[-1].std())
            if SCHEMES[s][1] == "tanh":  # the share of last-layer units stuck at -1 or 1
                metrics[f"{s}/saturated"] = float((acts[-1].abs() > 0.99).float().mean())
            if r.diverged:
                metrics[f"{s}/diverged"] = 1.0
                continue
            metrics[f"{s}/test_acc"] = r.test["acc"]
            model = r.fit.model.cpu()
            metrics[f"{s}/unit_spread"] = unit_spread(model)
            before = at_init[s]["weights"]
            after = [m.weight.detach() for m in model if isinstance(m, nn.Linear)]
            metrics[f"{s}/hidden_weight_change"] = max(
                float((a - b).abs().max()) for a, b in zip(after[:-1], before[:-1], strict=True))
        head = "he_relu/test_acc"
        return {head: metrics.pop(head), **metrics} if head in metrics else metrics


def spread_figure(at_init: dict[str, dict]):
    """The standard deviation of each layer's activations and weight gradients, by scheme."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    for s, d in at_init.items():
        a = [float(v.std()) for v in d["acts"].values()]
        g = [float(v.std()) for v in d["grads"].values()]
        ax0.plot(np.arange(1, len(a) + 1), np.maximum(a, 1e-12), marker="o", label=s)
        ax1.plot(np.arange(1, len(g) + 1), np.maximum(g, 1e-12), marker="o", label=s)
    ax0.set(title="activation std per hidden layer (at init)", yscale="log",
            xlabel="layer (1 = next to the input)")
    ax1.set(title="weight-gradient std per layer (at init)", yscale="log",
            xlabel="layer (1 = next to the input)")
    for ax in (ax0, ax1):
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    return fig
