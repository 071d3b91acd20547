"""A 2-layer MLP learns XOR, the function a single perceptron cannot represent."""

from __future__ import annotations

from dataclasses import dataclass

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

    lesson = "mlp"
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
        run.figure("decision", plots.decision_surface(
            fit.trainer, data.train.x, data.train.y, margin=0.25, label="P(x1 XOR x2 = 1)",
            title="XOR decision surface"))
        return {"acc": fit.test["acc"], "loss": fit.test["loss"]}

