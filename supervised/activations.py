"""The same deep MLP with seven activation functions, on the 8x8 digits.

Sigmoid, tanh, ReLU, leaky ReLU, ELU, GELU and none at all ("linear"): each function and its
derivative; each network's learning curves; and the gradient norm of every layer, which with the
sigmoid shrinks layer by layer towards the input (its derivative is at most 1/4: vanishing
gradients) while ReLU's stays level. Without an activation the deep network collapses to one
linear layer: the lab multiplies its weight matrices out and checks that a single `nn.Linear`
computes the same function. And the bias lesson: inputs (1, 2) with weights (-2, 1) give
ReLU(0) = 0, a dead output, until a bias of 3 lifts it to 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labs import Lab, SplitConfig, datasets, option, probes, variants

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
               "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU,
               "linear": nn.Identity}


@dataclass
class Config(SplitConfig):
    activations: list[str] = option(list(ACTIVATIONS), "activations to compare",
                                    choices=tuple(ACTIVATIONS))
    depth: int = option(6, "hidden layers (deep, so that vanishing gradients show)", min=1)
    width: int = option(64, "units per hidden layer", min=1)
    epochs: int = option(20, "passes over the training data")
    lr: float = option(0.05, "learning rate of SGD with momentum 0.9 (plain SGD shows "
                             "vanishing gradients; Adam would rescale them away)")
    momentum: float = option(0.9, "SGD momentum", min=0, lt=1)


def deep_mlp(n_in: int, depth: int, width: int, n_out: int, activation: str) -> nn.Sequential:
    """`depth` hidden Linear layers of `width` units, each followed by the activation."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def collapse(model: nn.Sequential) -> nn.Linear:
    """The single linear layer a network without activations equals: W = W_L ... W_1 and
    b = W_L (... (W_2 b_1 + b_2) ...) + b_L."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if any(not isinstance(m, (nn.Linear, nn.Identity)) for m in model):
        raise ValueError("only a network of Linear layers (and Identity) collapses")
    w = linears[0].weight.detach().double()
    b = linears[0].bias.detach().double()
    for lin in linears[1:]:
        w = lin.weight.detach().double() @ w
        b = lin.weight.detach().double() @ b + lin.bias.detach().double()
    single = nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
    with torch.no_grad():
        single.weight.copy_(w)
        single.bias.copy_(b)
    return single


def relu_neuron(x, w, b: float = 0.0) -> float:
    """One ReLU unit: max(0, w . x + b)."""
    lin = nn.Linear(len(x), 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([w], dtype=torch.float32))
        lin.bias.fill_(b)
        return float(torch.relu(lin(torch.tensor(x, dtype=torch.float32))))


class Activations(Lab):
    """One deep MLP, seven activations: curves, vanishing gradients, linear collapse, the bias.

    One deep MLP with sigmoid, tanh, ReLU, leaky ReLU, ELU, GELU or no activation: curves,
    per-layer gradient norms (vanishing with sigmoid), the linear collapse, the bias lesson.
    """

    lesson = "activations"
    tags = ("supervised", "mlp", "basics", "activations")
    explains = "none"
    headline = "grad_ratio_relu_over_sigmoid"
    Config = Config

    def data(self, cfg: Config):
        return datasets.digits(test_size=cfg.test_size, val_size=cfg.val_size, seed=cfg.seed)

    def model(self, cfg: Config, data) -> dict[str, nn.Module]:
        return {a: deep_mlp(data.n_features, cfg.depth, cfg.width, data.n_classes, a)
                for a in cfg.activations}

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        norms: dict[str, probes.GradientNorms] = {}

        def variant(act: str):
            def build():
                torch.manual_seed(cfg.seed)  # the same initial weights for every activation
                model = deep_mlp(data.n_features, cfg.depth, cfg.width, data.n_classes, act)
                norms[act] = probes.GradientNorms(model)
                opt = torch.optim.SGD(model.parameters(), cfg.lr, momentum=cfg.momentum)
                return variants.Variant(model, fit={"optimizer": opt, "callbacks": [norms[act]]})
            return build

        results = variants.fit_all(run, {a: variant(a) for a in cfg.activations}, data,
                                   loss=nn.CrossEntropyLoss(), diverged="report")
        variants.log_table(run, "comparison", results,
                           ["train_loss", "train_acc", "test_acc", "seconds"])
        run.figure("val_loss", variants.curves(results, "val_loss", title="validation loss"))
        run.figure("val_acc", variants.curves(results, "val_acc", title="validation accuracy"))
        run.figure("functions", functions_figure(cfg.activations))
        run.figure("gradient_norms", gradient_norms_figure(norms))

        metrics: dict[str, float] = {}
        for a, r in results.items():
            if r.fit is not None:
                metrics[f"{a}/test_acc"] = r.test["acc"]
            first = list(norms[a].first.values())
            # how much of the output layer's gradient reaches the first layer, at the start
            metrics[f"{a}/grad_first_over_last"] = first[0] / first[-1]
        headline = {}
        if {"sigmoid", "relu"} <= set(cfg.activations):
            headline["grad_ratio_relu_over_sigmoid"] = (
                metrics["relu/grad_first_over_last"] / metrics["sigmoid/grad_first_over_last"])
        if "linear" in results and results["linear"].fit is not None:
            deep = results["linear"].fit.model.cpu().double()
            single = collapse(deep)
            x = data.test.x.double()
            with torch.no_grad():
                metrics["linear/collapse_max_diff"] = float((deep(x) - single(x)).abs().max())
            deep.float()
        metrics["bias/relu_without_bias"] = relu_neuron((1, 2), (-2, 1))
        metrics["bias/relu_with_bias_3"] = relu_neuron((1, 2), (-2, 1), 3.0)
        run.table("bias", ["inputs", "weights", "bias", "w.x + b", "ReLU"],
                  [["(1, 2)", "(-2, 1)", b, -2 + 2 + b, relu_neuron((1, 2), (-2, 1), b)]
                   for b in (0.0, 3.0)])
        return {**headline, **metrics}


def functions_figure(names):
    """Each activation and its derivative (by autograd) on [-5, 5]."""
    from matplotlib.figure import Figure

    x = torch.linspace(-5, 5, 401, requires_grad=True)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_f, ax_d = fig.subplots(1, 2)
    for name in names:
        y = ACTIVATIONS[name]()(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
        ax_f.plot(x.detach(), y.detach(), label=name)
        ax_d.plot(x.detach(), dy, label=name)
    ax_f.set(title="activation f(z)", xlabel="z", ylim=(-2, 5))
    ax_d.set(title="derivative f'(z) (sigmoid: at most 1/4)", xlabel="z", ylim=(-0.2, 1.3))
    for ax in (ax_f, ax_d):
        ax.grid(alpha=0.3)
        ax.axhline(0, color="black", lw=0.6)
    ax_d.legend(fontsize=8)
    return fig


def gradient_norms_figure(norms: dict[str, probes.GradientNorms]):
    """Per-layer weight-gradient norm, input layer on the left: at the first batch and
    averaged over training."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    for name, g in norms.items():
        layers = np.arange(1, len(g.first) + 1)
        ax0.plot(layers, list(g.first.values()), marker="o", label=name)
        ax1.plot(layers, list(g.mean().values()), marker="o", label=name)
    ax0.set(title="gradient norm per layer, first batch", yscale="log",
            xlabel="layer (1 = next to the input)", ylabel="|dLoss/dW|")
    ax1.set(title="mean over training", yscale="log", xlabel="layer (1 = next to the input)")
    for ax in (ax0, ax1):
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    return fig
