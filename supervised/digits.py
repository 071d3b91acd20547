"""Keras-style dense network on scikit-learn's 8x8 handwritten digits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from labs import Lab, SplitConfig, image_options, models, option, plots


@dataclass
class Config(image_options(), SplitConfig):  # dataset, data_dir, download
    hidden: list[int] = option([64], "hidden layer widths", min=1)
    activation: str = option("relu", "hidden activation", choices=tuple(models.ACTIVATIONS))
    dropout: float = option(0.2, "dropout after each hidden layer", min=0, lt=1)
    epochs: int = option(60, "passes over the training data")
    lr: float = option(2e-3, "learning rate (with 10% held out for validation, 1e-3 ends "
                             "below 97% test accuracy for seed 0)")


class DigitsMLP(Lab):
    """Dense network (64 -> hidden -> 10, softmax) on the 8x8 handwritten digits."""

    lesson = "mlp"
    tags = ("supervised", "mlp", "images")
    explains = "image"
    headline = "test_acc"
    Config = Config

    def data(self, cfg: Config):
        return cfg.load_images(scale=True)

    def model(self, cfg: Config, data) -> nn.Module:
        return models.mlp(data.n_features, cfg.hidden, data.n_classes, cfg.activation,
                          cfg.dropout)

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        fit = run.fit(model, data, loss=nn.CrossEntropyLoss())

        run.figure("curves", plots.curves(fit.history, title=f"digits-mlp ({cfg.dataset})"))
        pred = fit.trainer.predict(data.test.x).argmax(-1).cpu().numpy()
        true = data.test.y.numpy()
        run.figure("confusion", plots.confusion(true, pred, data.class_names))
        run.figure("per_class", plots.per_class(true, pred, data.class_names))
        wrong = np.flatnonzero(pred != true)[:32]
        images = [data.display(data.test.x[i].numpy()) for i in wrong]
        titles = [f"{true[i]}→{pred[i]}" for i in wrong]
        run.figure("misclassified", plots.image_grid(
            images, titles, title=f"{len(np.flatnonzero(pred != true))} misclassified "
                                  f"(true→predicted)"))
        return {"test_acc": fit.test["acc"], "test_loss": fit.test["loss"],
                "train_acc": fit.history.last.get("train_acc", float("nan"))}
