"""Dense networks on scikit-learn's bundled tables: iris by stratified k-fold cross-validation,
and diabetes progression by regression against scikit-learn's MLP and linear regression."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from labs import Lab, TrainConfig, crossval, datasets, models, option, plots

# -- iris-mlp --------------------------------------------------------------------------------


@dataclass
class IrisConfig(TrainConfig):
    hidden: list[int] = option([8], "hidden layer widths (the course's 4 -> 8 -> 3)", min=1)
    k: int = option(10, "folds of the cross-validation", min=2)
    stratified: bool = option(True, "keep each fold's class proportions (StratifiedKFold)")
    epochs: int = option(100, "passes over each fold's training data")
    lr: float = option(0.01, "learning rate (Adam)")
    batch_size: int = option(16, "samples per gradient step")
    test_size: float = option(0.2, "held-out fraction for the final model that is explained",
                              gt=0, lt=1)


class IrisMLP(Lab):
    """Dense net (4 -> 8 ReLU -> 3) on iris: stratified 10-fold cross-validation, mean ± std."""

    lesson = "tabular"
    tags = ("supervised", "mlp", "tabular", "cross-validation")
    explains = "tabular"
    headline = "cv_acc_mean"
    Config = IrisConfig

    def data(self, cfg: IrisConfig):
        from sklearn.datasets import load_iris

        iris = load_iris()
        return datasets.from_arrays(iris.data, iris.target, test_size=cfg.test_size,
                                    seed=cfg.seed, feature_names=iris.feature_names,
                                    class_names=list(iris.target_names))

    def model(self, cfg: IrisConfig, data) -> nn.Module:
        return models.mlp(data.n_features, cfg.hidden, data.n_classes)

    def run(self, cfg: IrisConfig, run) -> dict:
        from sklearn.datasets import load_iris

        iris = load_iris()
        data = self.data(cfg)
        cv = crossval.cross_validate(
            run, lambda: self.model(cfg, data), iris.data, iris.target, k=cfg.k,
            stratified=cfg.stratified, seed=cfg.seed, feature_names=iris.feature_names,
            class_names=list(iris.target_names), loss=nn.CrossEntropyLoss())
        crossval.log_table(run, "folds", cv)
        acc = cv.values("acc")
        run.figure("folds", fold_bars(acc, f"{cfg.k}-fold cross-validation"
                                           f"{' (stratified)' if cfg.stratified else ''}"))
        print(f"{cfg.k}-fold accuracy: {acc.mean():.3f} ± {acc.std():.3f} "
              f"(min {acc.min():.3f}, max {acc.max():.3f})")

        # the final model, on one stratified split: what lab eval and LIME look at
        model = self.model(cfg, data)
        fit = run.fit(model, data, loss=nn.CrossEntropyLoss())
        run.figure("curves", plots.curves(fit.history, title="iris-mlp: final model"))
        pred = fit.trainer.predict(data.test.x).argmax(-1).cpu().numpy()
        run.figure("confusion", plots.confusion(data.test.y.numpy(), pred, data.class_names))
        return {**cv.summary(), "test_acc": fit.test["acc"]}


def fold_bars(acc: np.ndarray, title: str) -> Figure:
    """Accuracy per held-out fold, with the mean and ± one standard deviation."""
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(range(len(acc)), acc, color="tab:blue", alpha=0.8)
    m, s = acc.mean(), acc.std()
    ax.axhline(m, color="k", label=f"mean {m:.3f} ± {s:.3f}")
    ax.axhspan(m - s, m + s, color="k", alpha=0.1)
    ax.set_xticks(range(len(acc)), [str(i) for i in range(len(acc))])
    ax.set_xlabel("held-out fold")
    ax.set_ylabel("accuracy")
    ax.set_ylim(max(0.0, acc.min() - 0.15), 1.02)
    ax.legend(loc="lower right")
    ax.set_title(title)
    return fig


# -- tabular-regression ----------------------------------------------------------------------


@dataclass
class RegressionConfig(TrainConfig):
    hidden: list[int] = option([16], "hidden layer widths", min=1)
    epochs: int = option(150, "passes over the training data")
    lr: float = option(3e-3, "learning rate (Adam)")
    batch_size: int = option(32, "samples per gradient step")
    test_size: float = option(0.2, "held-out test fraction", gt=0, lt=1)
    val_size: float = option(0.1, "validation fraction (curves)", min=0, lt=1)


class Rescale(nn.Module):
    """y = mean + std * z: the network predicts a standardized target while the loss and the
    metrics stay in the target's own units (disease progression, 25..346)."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * z


class TabularRegression(Lab):
    """Dense net with a linear output on the diabetes data vs MLPRegressor and linear regression.

    MSE, MAE, R² and a predicted-vs-true figure; LIME in regression mode."""

    lesson = "tabular"
    tags = ("supervised", "mlp", "tabular", "regression")
    explains = "tabular"
    headline = "test_r2"
    Config = RegressionConfig

    def data(self, cfg: RegressionConfig):
        from sklearn.datasets import load_diabetes

        d = load_diabetes()
        return datasets.from_arrays(d.data, d.target, classification=False,
                                    test_size=cfg.test_size, val_size=cfg.val_size,
                                    seed=cfg.seed, feature_names=d.feature_names)

    def model(self, cfg: RegressionConfig, data) -> nn.Module:
        y = data.train.y
        return nn.Sequential(models.mlp(data.n_features, cfg.hidden, 1), nn.Flatten(0),
                             Rescale(y.mean(), y.std()))

    def run(self, cfg: RegressionConfig, run) -> dict:
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.linear_model import LinearRegression
        from sklearn.neural_network import MLPRegressor
        from sklearn.preprocessing import StandardScaler

        data = self.data(cfg)
        fit = run.fit(self.model(cfg, data), data, loss=nn.MSELoss(), metrics=())
        x_tr, y_tr = data.train.x.numpy(), data.train.y.numpy()
        x_te, y_te = data.test.x.numpy(), data.test.y.numpy()
        # scikit-learn's MLP on the same standardized inputs, its target standardized too
        sk_mlp = TransformedTargetRegressor(
            MLPRegressor(hidden_layer_sizes=tuple(cfg.hidden), learning_rate_init=cfg.lr,
                         max_iter=2000, batch_size=cfg.batch_size, random_state=cfg.seed),
            transformer=StandardScaler())
        predictions = {"this net": fit.trainer.predict(data.test.x).cpu().numpy(),
                       "sklearn MLPRegressor": sk_mlp.fit(x_tr, y_tr).predict(x_te),
                       "linear regression": LinearRegression().fit(x_tr, y_tr).predict(x_te)}
        scores = {name: regression_scores(y_te, p) for name, p in predictions.items()}
        run.table("comparison", ["model", "mse", "mae", "r2"],
                  [[n, s["mse"], s["mae"], s["r2"]] for n, s in scores.items()])
        run.figure("predicted_vs_true", predicted_vs_true(y_te, predictions, scores))
        run.figure("curves", plots.curves(fit.history, keys=("loss",),
                                          title="tabular-regression (MSE)"))
        net = scores["this net"]
        return {"test_r2": net["r2"], "test_mse": net["mse"], "test_mae": net["mae"],
                "sklearn_mlp_r2": scores["sklearn MLPRegressor"]["r2"],
                "linear_r2": scores["linear regression"]["r2"]}


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {"mse": float(mean_squared_error(y, pred)), "mae": float(mean_absolute_error(y, pred)),
            "r2": float(r2_score(y, pred))}


def predicted_vs_true(y: np.ndarray, predictions: dict[str, np.ndarray],
                      scores: dict[str, dict[str, float]]) -> Figure:
    """One panel per model: predicted against true, the diagonal is a perfect prediction."""
    fig = Figure(figsize=(4 * len(predictions), 4), layout="constrained")
    lo, hi = float(y.min()), float(y.max())
    for i, (name, p) in enumerate(predictions.items()):
        ax = fig.add_subplot(1, len(predictions), i + 1)
        ax.scatter(y, p, s=12, alpha=0.7)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
        s = scores[name]
        ax.set_title(f"{name}\nR² {s['r2']:.3f} · MAE {s['mae']:.1f}", fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
    return fig
