"""A small MLP learns the curved border between scikit-learn's two interleaving half-moons.

An example of a third-party lab: it imports only `from labs import ...`, registers itself with
one entry point in `pyproject.toml`, and gets seeding, devices, checkpoints, W&B and LIME
explanations from the framework. It chooses *which* points LIME explains: the ones the model
is least sure about, near its decision boundary, where an explanation is most interesting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from labs import Lab, TrainConfig, datasets, default_subject, models, option, plots


@dataclass
class Config(TrainConfig):
    n_samples: int = option(600, "points drawn from the two moons", min=10)
    noise: float = option(0.2, "standard deviation of the Gaussian noise added to the points",
                         min=0)
    hidden: list[int] = option([32, 32], "hidden layer widths", min=1)
    activation: str = option("relu", "hidden activation (non-linear: the border is curved)",
                             choices=tuple(models.ACTIVATIONS))
    epochs: int = option(60, "passes over the training data")
    lr: float = option(0.01, "learning rate")
    batch_size: int = option(32, "samples per gradient step")
    test_size: float = option(0.25, "held-out test fraction (stratified)", gt=0, lt=1)


class MoonsMLP(Lab):
    """MLP on scikit-learn's two moons: a curved decision boundary, explained with LIME."""

    tags = ("supervised", "mlp", "tabular", "example")
    explains = "tabular"
    headline = "test_acc"
    Config = Config

    def data(self, cfg: Config):
        from sklearn.datasets import make_moons

        x, y = make_moons(n_samples=cfg.n_samples, noise=cfg.noise, random_state=cfg.seed)
        return datasets.from_arrays(x, y, test_size=cfg.test_size, seed=cfg.seed,
                                    feature_names=["x1", "x2"], class_names=["upper", "lower"])

    def model(self, cfg: Config, data) -> nn.Module:
        return models.mlp(data.n_features, cfg.hidden, data.n_classes, cfg.activation)

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        fit = run.fit(model, data, loss=nn.CrossEntropyLoss())

        run.figure("curves", plots.curves(fit.history, title="moons-mlp"))
        run.figure("decision_boundary", plots.decision_surface(
            fit.trainer, data.test.x, data.test.y, label="P(lower moon)",
            feature_names=("x1 (standardized)", "x2 (standardized)"),
            title="moons-mlp: decision boundary on the test points"))
        return {"test_acc": fit.test["acc"], "test_loss": fit.test["loss"]}

    def subjects(self, cfg: Config, model: nn.Module, data) -> dict:
        """The default tabular subject, with the test points nearest the boundary first."""
        subject = default_subject("tabular", model, data, cfg)
        p_lower = subject.predict(subject.samples)[:, 1]
        order = np.argsort(np.abs(p_lower - 0.5), kind="stable")
        subject.samples = subject.samples[order]
        if subject.labels is not None:
            subject.labels = subject.labels[order]
        return {"": subject}

