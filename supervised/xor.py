"""A 2-layer MLP learns XOR, the function a single perceptron cannot represent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labs import Lab, TrainConfig, datasets, models, option, plots


@dataclass
class Config(TrainConfig):
    hidden: int = option(4, "units in the hidden layer", min=1)
    activation: str = option("tanh", "hidden activation (non-linear!)",
                             choices=tuple(models.ACTIVATIONS))
    epochs: int = option(300, "passes over the four rows (one full batch each)")
    lr: float = option(0.05, "learning rate")
    batch_size: int = option(4, "samples per step (4 = full batch)")


class XorMLP(Lab):
    """Two-layer MLP with a non-linear activation learns XOR to 100%."""

    tags = ("supervised", "mlp", "basics")
    explains = "tabular"
    headline = "acc"
    Config = Config

    def data(self, cfg: Config):
        return datasets.logic_gate("XOR")

    def model(self, cfg: Config, data) -> nn.Module:
        return models.mlp(2, [cfg.hidden], 2, cfg.activation)

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        fit = run.fit(model, data, loss=nn.CrossEntropyLoss())
        run.figure("curves", plots.curves(fit.history, title="xor-mlp"))
        run.figure("decision", decision_surface(fit.trainer, data))
        return {"acc": fit.test["acc"], "loss": fit.test["loss"]}


def decision_surface(trainer, data):
    """P(class 1) over the unit square, with the four XOR points."""
    from matplotlib.figure import Figure

    g = np.linspace(-0.25, 1.25, 121, dtype=np.float32)
    xx, yy = np.meshgrid(g, g)
    grid = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1))
    p = trainer.predict(grid).softmax(-1)[:, 1].cpu().numpy().reshape(xx.shape)
    fig = Figure(figsize=(4.2, 3.6))
    ax = fig.add_subplot()
    cs = ax.contourf(xx, yy, p, levels=20, cmap="RdBu_r", vmin=0, vmax=1)
    fig.colorbar(cs, ax=ax, label="P(x1 XOR x2 = 1)")
    x, y = data.train.x.numpy(), data.train.y.numpy()
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", edgecolors="k", s=120, vmin=0, vmax=1)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title("XOR decision surface")
    return fig
