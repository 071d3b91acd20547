"""Logistic regression (sigmoid + log loss) by gradient descent on the breast-cancer data.

One linear unit z = w . x + b, the sigmoid p = 1 / (1 + e^-z) and the log loss
-[y log p + (1 - y) log(1 - p)], minimized by full-batch gradient descent (with momentum) on
scikit-learn's 30-feature breast-cancer data. The same L2 penalty as scikit-learn's
`LogisticRegression(C=...)` (0.5 |w|^2 + C * sum of log losses, i.e. weight decay 1 / (C n) on
the mean loss, the intercept unpenalized) makes the two fits the same optimum: the lab shows
the coefficients side by side. The model's own coefficients are a ground truth for LIME: its
explanations should rank the 30 features like |w| does (Spearman, `explain_rank_corr`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labs import Lab, TrainConfig, datasets, default_subject, option, plots


@dataclass
class Config(TrainConfig):
    C: float = option(1.0, "inverse L2 strength, as scikit-learn's LogisticRegression(C=...)",
                      gt=0)
    epochs: int = option(500, "full-batch gradient steps")
    lr: float = option(0.5, "learning rate (standardized inputs: stable below ~0.6)")
    momentum: float = option(0.9, "heavy-ball momentum (0: plain gradient descent)", min=0,
                             lt=1)
    batch_size: int = option(100_000, "samples per step (larger than the data: full batch)")
    test_size: float = option(0.2, "held-out test fraction (stratified)", gt=0, lt=1)
    explain_samples: int = option(10, "test samples LIME explains")


class Logistic(nn.Module):
    """z = w . x + b, returned as the logits (0, z): their softmax is (1 - sigmoid(z),
    sigmoid(z)), so cross-entropy on them is exactly the log loss of the sigmoid."""

    def __init__(self, n_features: int):
        super().__init__()
        self.linear = nn.Linear(n_features, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return torch.cat([torch.zeros_like(z), z], dim=1)

    def proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(x)).squeeze(1)


class LogisticRegression(Lab):
    """Sigmoid + log loss by gradient descent on breast cancer, as scikit-learn's, LIME-checked.

    Sigmoid + log loss by gradient descent on breast cancer, against scikit-learn's
    LogisticRegression; LIME ranks the features like the coefficients.
    """

    lesson = "logistic"
    tags = ("supervised", "basics", "tabular", "linear")
    explains = "tabular"
    headline = "test_acc"
    Config = Config

    def data(self, cfg: Config):
        from sklearn.datasets import load_breast_cancer

        bc = load_breast_cancer()
        return datasets.from_arrays(bc.data, bc.target, test_size=cfg.test_size, scale=True,
                                    seed=cfg.seed, feature_names=list(bc.feature_names),
                                    class_names=list(bc.target_names))

    def model(self, cfg: Config, data) -> nn.Module:
        return Logistic(data.n_features)

    def run(self, cfg: Config, run) -> dict:
        from sklearn.linear_model import LogisticRegression as SkLogistic

        data = self.data(cfg)
        model = self.model(cfg, data)
        n = len(data.train.y)
        # scikit-learn minimizes 0.5|w|^2 + C * sum(loss): per sample, mean(loss) + |w|^2/(2Cn);
        # SGD's weight_decay adds wd * w to the gradient, i.e. the penalty (wd/2)|w|^2
        opt = torch.optim.SGD([{"params": [model.linear.weight], "weight_decay": 1 / (cfg.C * n)},
                               {"params": [model.linear.bias]}], lr=cfg.lr,
                              momentum=cfg.momentum)
        fit = run.fit(model, data, loss=nn.CrossEntropyLoss(), optimizer=opt)

        sk = SkLogistic(C=cfg.C, max_iter=10_000, tol=1e-10)
        sk.fit(data.train.x.numpy(), data.train.y.numpy())
        ours = model.linear.weight.detach().cpu().numpy().ravel()
        theirs = sk.coef_.ravel()
        sk_acc = float(sk.score(data.test.x.numpy(), data.test.y.numpy()))
        names = list(data.feature_names)
        run.table("coefficients", ["feature", "gradient_descent", "sklearn"],
                  [[f, float(a), float(b)] for f, a, b in zip(names, ours, theirs, strict=True)])
        run.figure("curves", plots.curves(fit.history, title="logistic regression"))
        run.figure("coefficients", coefficient_bars(names, ours, theirs))
        run.figure("sigmoid", sigmoid_figure(model, data))
        return {
            "test_acc": fit.test["acc"], "test_loss": fit.test["loss"], "sklearn_acc": sk_acc,
            "coef_max_diff": float(np.abs(ours - theirs).max()),
            "intercept_diff": float(abs(model.linear.bias.item() - sk.intercept_[0])),
            "coef_max_abs": float(np.abs(theirs).max()),
        }

    def subjects(self, cfg: Config, model: nn.Module, data) -> dict:
        """The usual test samples, with the model's coefficients as the ground truth that
        LIME's weights (local slopes per standardized unit) should rank alike."""
        subject = default_subject("tabular", model, data, cfg)
        subject.true_weights = model.linear.weight.detach().cpu().numpy().ravel().copy()
        return {"": subject}


def coefficient_bars(names, ours: np.ndarray, theirs: np.ndarray):
    """Both fits' coefficients per feature, largest |w| first."""
    from matplotlib.figure import Figure

    order = np.argsort(-np.abs(theirs))
    fig = Figure(figsize=(7, 7), layout="constrained")
    ax = fig.add_subplot()
    pos = np.arange(len(order))
    ax.barh(pos - 0.2, ours[order], 0.4, label="gradient descent (this lab)")
    ax.barh(pos + 0.2, theirs[order], 0.4, label="scikit-learn LogisticRegression")
    ax.set_yticks(pos, [names[i] for i in order], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel="coefficient (per standard deviation of the feature)",
           title="the same optimum: coefficients of both fits")
    ax.legend(fontsize=8)
    return fig


def sigmoid_figure(model: Logistic, data):
    """Test samples on the sigmoid: z = w . x + b against p, coloured by the true class."""
    from matplotlib.figure import Figure

    with torch.no_grad():
        z = model.linear(data.test.x.to(next(model.parameters()).device)).squeeze(1).cpu()
    zz = torch.linspace(float(z.min()) - 1, float(z.max()) + 1, 200)
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(zz, torch.sigmoid(zz), color="black", lw=1, label="sigmoid(z)")
    y = data.test.y.numpy()
    for c, name in enumerate(data.class_names):
        ax.scatter(z[y == c], torch.sigmoid(z[y == c]), s=12, alpha=0.7, label=f"true: {name}")
    ax.axhline(0.5, ls=":", color="grey")
    ax.set(xlabel="z = w . x + b", ylabel=f"p({data.class_names[1]})",
           title="test samples on the sigmoid (threshold 0.5)")
    ax.legend(fontsize=8)
    return fig
