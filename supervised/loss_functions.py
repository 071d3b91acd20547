"""Loss functions: what each one measures, its gradient, and what training with it does.

- Regression: MSE, MAE and Huber against the residual, with their gradients (MAE's is -1 or +1,
  with a kink at 0; MSE's grows with the error). A line fitted to data with 10% outliers by
  each: MSE is pulled towards the outliers, MAE and Huber are not.
- Classification: binary cross-entropy on probabilities and on logits (the same value; the
  logits version is the numerically safe one), categorical cross-entropy with one-hot and with
  integer labels (the same value), hinge, and KL divergence (equal to cross-entropy for one-hot
  targets, whose entropy is 0); each against the logit or margin with its gradient. The same
  network trained on the digits with cross-entropy, KL, multi-class hinge and MSE on softmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labs import Lab, SplitConfig, datasets, models, option, variants

SLOPE, INTERCEPT = 2.0, 1.0


def huber(delta: float = 1.0) -> nn.Module:
    return nn.HuberLoss(delta=delta)


def kl_onehot(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KL(one-hot(y) || softmax(out)), per sample, averaged."""
    target = F.one_hot(y, out.shape[-1]).float()
    return F.kl_div(F.log_softmax(out, -1), target, reduction="batchmean")


def mse_softmax(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared error between the softmax probabilities and the one-hot target."""
    return F.mse_loss(F.softmax(out, -1), F.one_hot(y, out.shape[-1]).float())


REGRESSION = {"mse": nn.MSELoss, "mae": nn.L1Loss, "huber": huber}
CLASSIFICATION = {"cross_entropy": nn.CrossEntropyLoss, "kl_divergence": lambda: kl_onehot,
                  "hinge": nn.MultiMarginLoss, "mse_softmax": lambda: mse_softmax}


@dataclass
class Config(SplitConfig):
    losses: list[str] = option(list(CLASSIFICATION), "classification losses to train with",
                               choices=tuple(CLASSIFICATION))
    outliers: float = option(0.1, "share of regression targets replaced by outliers", min=0,
                             lt=0.5)
    hidden: list[int] = option([32], "hidden widths of the digits network", min=1)
    epochs: int = option(15, "passes over the training data")
    lr: float = option(3e-3, "learning rate (Adam)")
    line_epochs: int = option(100, "epochs of the line fit (full batch, Adam)", min=1)
    line_lr: float = option(0.1, "learning rate of the line fit", gt=0)


def outlier_line(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """y = 2x + 1 + small noise, with a share of the points (all on the right, x > 0, where
    they tilt the line most) pushed far above it."""
    rng = np.random.default_rng(cfg.seed)
    x = rng.uniform(-2, 2, (200, 1)).astype(np.float32)
    y = SLOPE * x[:, 0] + INTERCEPT + rng.normal(0, 0.2, 200)
    bad = (rng.random(200) < 2 * cfg.outliers) & (x[:, 0] > 0)
    y[bad] += rng.uniform(8, 15, bad.sum())
    return x, y.astype(np.float32)


def equivalences(seed: int = 0) -> dict[str, tuple[float, float]]:
    """Pairs of ways to compute one loss that must agree: (value one way, value the other)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(32, generator=g)                     # binary logits
    t = (torch.rand(32, generator=g) > 0.5).float()      # binary targets
    logits = torch.randn(32, 5, generator=g)             # 5-class logits
    y = torch.randint(0, 5, (32,), generator=g)          # integer labels
    onehot = F.one_hot(y, 5).float()
    return {
        "bce: probabilities vs logits": (
            float(F.binary_cross_entropy(torch.sigmoid(z), t)),
            float(F.binary_cross_entropy_with_logits(z, t))),
        "categorical ce: integer vs one-hot labels": (
            float(F.cross_entropy(logits, y)), float(F.cross_entropy(logits, onehot))),
        "categorical ce: logits vs probabilities (log of softmax, NLL)": (
            float(F.cross_entropy(logits, y)),
            float(F.nll_loss(torch.log(F.softmax(logits, -1)), y))),
        "kl(one-hot || softmax) vs cross-entropy": (
            float(kl_onehot(logits, y)), float(F.cross_entropy(logits, y))),
        "2-class ce on (0, z) vs bce on z": (
            float(F.cross_entropy(torch.stack([torch.zeros_like(z), z], 1), t.long())),
            float(F.binary_cross_entropy_with_logits(z, t))),
    }


class LossFunctions(Lab):
    """MSE, MAE, Huber, cross-entropy, hinge, KL: each loss, its gradient, a net trained with it.

    MSE, MAE, Huber, cross-entropy (binary, categorical), hinge and KL: each loss and its
    gradient, a line fit with outliers, and one network trained with each classification loss.
    """

    lesson = "losses"
    tags = ("supervised", "basics", "losses")
    explains = "none"
    headline = "mae_slope_error"
    Config = Config

    def data(self, cfg: Config):
        return datasets.digits(test_size=cfg.test_size, val_size=cfg.val_size, seed=cfg.seed)

    def model(self, cfg: Config, data) -> dict[str, nn.Module]:
        nets = {f"class/{n}": models.mlp(data.n_features, cfg.hidden, data.n_classes)
                for n in cfg.losses}
        return nets | {f"line/{n}": line_model() for n in REGRESSION}

    def evaluate(self, cfg: Config, models: dict, data) -> dict:
        """`lab eval` scores the digits networks (the line fits belong to other data)."""
        return super().evaluate(cfg, {k: m for k, m in models.items()
                                      if k.startswith("class/")}, data)

    def run(self, cfg: Config, run) -> dict:
        metrics: dict[str, float] = {}
        # 1. the line with outliers, fitted with each regression loss
        x, y = outlier_line(cfg)
        line = datasets.from_arrays(x, y, classification=False, scale=False, seed=cfg.seed)
        n = len(line.train.y)

        def line_variant(name: str):
            torch.manual_seed(cfg.seed)
            model = line_model()
            return variants.Variant(model, fit={
                "loss": REGRESSION[name](),
                "optimizer": torch.optim.Adam(model.parameters(), cfg.line_lr)})

        lines = variants.fit_all(run, {n_: line_variant(n_) for n_ in REGRESSION}, line,
                                 prefix="line/", metrics=(), epochs=cfg.line_epochs,
                                 batch_size=n)
        for name, r in lines.items():
            w, b = r.fit.model[0].weight.item(), r.fit.model[0].bias.item()
            metrics[f"{name}_slope_error"] = abs(w - SLOPE)
            metrics[f"{name}_intercept_error"] = abs(b - INTERCEPT)
        run.figure("outliers", lines_figure(line, lines))
        run.figure("regression_losses", regression_losses_figure())
        run.figure("classification_losses", classification_losses_figure())

        # 2. the same network with each classification loss
        data = self.data(cfg)

        def class_variant(name: str):
            torch.manual_seed(cfg.seed)
            model = models.mlp(data.n_features, cfg.hidden, data.n_classes)
            return variants.Variant(model, fit={"loss": CLASSIFICATION[name]()})

        nets = variants.fit_all(run, {n_: class_variant(n_) for n_ in cfg.losses}, data,
                                prefix="class/")
        variants.log_table(run, "classification", nets, ["train_loss", "train_acc", "test_acc"])
        run.figure("val_acc", variants.curves(nets, "val_acc", title="validation accuracy, "
                                                                      "one network per loss"))
        for name, r in nets.items():
            metrics[f"{name}/test_acc"] = r.test["acc"]

        # 3. one loss, several ways to write it
        same = equivalences(cfg.seed)
        run.table("equivalences", ["loss", "one way", "the other", "difference"],
                  [[k, a, b, abs(a - b)] for k, (a, b) in same.items()])
        metrics["equivalence_max_diff"] = max(abs(a - b) for a, b in same.values())
        return {"mae_slope_error": metrics.pop("mae_slope_error"), **metrics}


def line_model() -> nn.Module:
    return nn.Sequential(nn.Linear(1, 1), nn.Flatten(0))


def lines_figure(line, fits):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(line.train.x[:, 0], line.train.y, s=8, color="grey", label="training points")
    xs = torch.linspace(-2, 2, 50)
    ax.plot(xs, SLOPE * xs + INTERCEPT, "k--", lw=1, label="true line")
    for name, r in fits.items():
        with torch.no_grad():
            ys = r.fit.model.cpu()(xs[:, None])
        ax.plot(xs, ys, lw=2, label=f"{name}: slope {r.fit.model[0].weight.item():.2f}")
    ax.set(xlabel="x", ylabel="y", title="a line fitted with outliers: MSE is pulled, MAE is not")
    ax.legend(fontsize=8)
    return fig


def _with_grad(fn, x):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), g


def regression_losses_figure():
    """MSE, MAE and Huber (delta 1) against the residual r, and their gradients d/dr."""
    from matplotlib.figure import Figure

    r = torch.linspace(-3, 3, 601)
    fns = {"MSE  r²": lambda r: r ** 2, "MAE  |r|": lambda r: r.abs(),
           "Huber (δ=1)": lambda r: F.huber_loss(r, torch.zeros_like(r), reduction="none")}
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    a0, a1 = fig.subplots(1, 2)
    for name, fn in fns.items():
        v, g = _with_grad(fn, r)
        a0.plot(r, v, label=name)
        a1.plot(r, g, label=name)
    a0.set(title="loss against the residual r = prediction - target", xlabel="r")
    a1.set(title="gradient d loss / d r (MAE: a jump at 0)", xlabel="r", ylim=(-3.5, 3.5))
    for ax in (a0, a1):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def classification_losses_figure():
    """For a positive example: BCE, hinge and squared error against the logit z; and KL
    divergence between two coin distributions."""
    from matplotlib.figure import Figure

    z = torch.linspace(-4, 4, 401)
    fns = {"binary cross-entropy  -log σ(z)": lambda z: F.softplus(-z),
           "hinge  max(0, 1 - z)": lambda z: torch.relu(1 - z),
           "squared error  (1 - σ(z))²": lambda z: (1 - torch.sigmoid(z)) ** 2}
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    a0, a1, a2 = fig.subplots(1, 3)
    for name, fn in fns.items():
        v, g = _with_grad(fn, z)
        a0.plot(z, v, label=name)
        a1.plot(z, g, label=name)
    a0.set(title="loss of a positive example (y = 1) against the logit z", xlabel="z")
    a1.set(title="gradient d loss / d z (squared error vanishes when z << 0)", xlabel="z")
    q = torch.linspace(0.01, 0.99, 99)
    for p in (0.5, 0.8, 0.99):
        kl = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
        a2.plot(q, kl, label=f"KL(p={p} || q)")
    a2.set(title="KL divergence between two coins", xlabel="q", ylim=(0, 3))
    for ax in (a0, a1, a2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig
