"""PCA vs a linear autoencoder vs a non-linear one, on the 8x8 digits (or MNIST).

A linear autoencoder trained on squared error spans the same subspace as PCA's leading
components (Baldi & Hornik, 1989), so its reconstruction error matches PCA's at every code
size; a non-linear one can do better at small sizes. Then the codes as features for a
classifier that sees only a few labelled digits, against the raw pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from generative.autoencoder import AutoEncoder
from generative.common import ImageDataConfig, grid, images, side
from labs import ConfigError, Lab, option, variants


@dataclass
class Config(ImageDataConfig):
    sizes: list[int] = option([2, 4, 8, 16], "code sizes compared (fewer than the pixels)",
                              min=1)
    hidden: list[int] = option([128], "the non-linear autoencoder's widths", min=1)
    probe_size: int = option(8, "code size whose codes feed the few-label classifier "
                                "(one of sizes)", min=1)
    labels_per_class: int = option(5, "labelled training digits per class for the probe",
                                   min=1)
    epochs: int = option(80, "passes over the training data (each autoencoder)")
    lr: float = option(3e-3, "learning rate of the non-linear autoencoders")
    linear_lr: float = option(3e-2, "peak learning rate of the linear autoencoders (cosine "
                                    "annealed to 0)", gt=0)

    def validate(self) -> None:
        super().validate()
        pixels = 64 if self.dataset == "digits" else 28 * 28
        if max(self.sizes) >= pixels:
            raise ConfigError(f"sizes={self.sizes}: a code must be smaller than the "
                              f"{pixels} pixels it encodes")
        if self.probe_size not in self.sizes:
            raise ConfigError(f"probe_size={self.probe_size} must be one of sizes={self.sizes}")


class LinearAE(nn.Module):
    """x -> W1 x + b1 -> W2 z + b2: no activation anywhere (PCA's model, found by descent)."""

    def __init__(self, size: int, pixels: int = 64):
        super().__init__()
        self.encoder, self.decoder = nn.Linear(pixels, size), nn.Linear(size, pixels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class PCAvsAE(Lab):
    """PCA vs linear vs non-linear autoencoder: reconstruction error by code size, few labels."""

    lesson = "autoencoders"
    tags = ("generative", "autoencoder", "pca", "images")
    explains = "none"
    headline = "linear_pca_ratio"
    Config = Config

    def data(self, cfg: Config):
        return cfg.images()

    def model(self, cfg: Config, data) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {}
        for k in cfg.sizes:
            out[f"linear-{k}"] = LinearAE(k, side(data) ** 2)
            out[f"ae-{k}"] = AutoEncoder("dense", cfg.hidden, k, side=side(data))
        return out

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        specs: dict[str, nn.Module | variants.Variant] = {}
        for name, net in self.model(cfg, data).items():
            # the linear one's small-variance directions converge slowly: a larger step,
            # annealed to zero, brings it onto PCA's subspace within the same epochs
            if name.startswith("linear"):
                opt = torch.optim.Adam(net.parameters(), cfg.linear_lr)
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
                net = variants.Variant(net, fit={"optimizer": opt, "scheduler": sched})
            specs[name] = net
        results = variants.fit_all(run, specs, data, loss=nn.MSELoss(), metrics=())
        variants.log_table(run, "comparison", results)
        models = {name: r.fit.model for name, r in results.items()}
        metrics = self.evaluate(cfg, models, data)
        run.figure("mse_by_size", self._curve(cfg, metrics))
        run.figure("val_curves", variants.curves(results, "val_loss",
                                                 title="validation MSE per autoencoder"))
        run.figure("fewlabel", variants.bars(
            {k: metrics[f"fewlabel_acc_{k}"] for k in ("raw", "pca", "linear", "ae")},
            "test accuracy", title=f"logistic regression on {cfg.labels_per_class} labelled "
                                   f"digits per class (codes of size {cfg.probe_size})"))
        run.figure("reconstructions", self._recon(cfg, models, data))
        return metrics

    def evaluate(self, cfg: Config, models: dict, data) -> dict:
        """Test MSE per pixel of PCA, the linear and the non-linear autoencoder per code size;
        the worst linear/PCA ratio; few-label probe accuracies (raw pixels and each code)."""
        from sklearn.decomposition import PCA

        train, test = data.train.x.numpy(), data.test.x.numpy()
        out: dict[str, float] = {}
        ratios = []
        for k in cfg.sizes:
            pca = PCA(k, random_state=cfg.seed).fit(train)
            out[f"pca_mse_{k}"] = _mse(pca.inverse_transform(pca.transform(test)), test)
            for kind in ("linear", "ae"):
                out[f"{kind}_mse_{k}"] = _mse(_apply(models[f"{kind}-{k}"], test), test)
            ratios.append(out[f"linear_mse_{k}"] / out[f"pca_mse_{k}"])
        out["linear_pca_ratio"] = float(max(ratios))
        out.update(self._probe(cfg, models, data))
        return out

    def _probe(self, cfg: Config, models: dict, data) -> dict:
        """Logistic regression on `labels_per_class` labelled training digits per class."""
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        train, test = data.train.x.numpy(), data.test.x.numpy()
        y_train, y_test = data.extras["labels"]["train"], data.extras["labels"]["test"]
        rng = np.random.default_rng(cfg.seed)
        few = np.concatenate([rng.choice(np.flatnonzero(y_train == c), cfg.labels_per_class,
                                         replace=False) for c in range(10)])
        k = cfg.probe_size
        pca = PCA(k, random_state=cfg.seed).fit(train)  # unsupervised: all training digits
        feats = {"raw": lambda x: x, "pca": pca.transform,
                 "linear": lambda x: _codes(models[f"linear-{k}"], x),
                 "ae": lambda x: _codes(models[f"ae-{k}"], x)}
        out = {}
        for name, f in feats.items():
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            clf.fit(f(train[few]), y_train[few])
            out[f"fewlabel_acc_{name}"] = float(clf.score(f(test), y_test))
        return out

    def _curve(self, cfg: Config, m: dict):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.6, 3.8), layout="constrained")
        ax = fig.add_subplot()
        for kind, style in (("pca", "o-"), ("linear", "x--"), ("ae", "s-")):
            ax.plot(cfg.sizes, [m[f"{kind}_mse_{k}"] for k in cfg.sizes], style,
                    label={"pca": "PCA", "linear": "linear AE", "ae": "non-linear AE"}[kind])
        ax.set_xscale("log", base=2)
        ax.set_xticks(cfg.sizes, [str(k) for k in cfg.sizes])
        ax.set_xlabel("code size")
        ax.set_ylabel("test MSE per pixel")
        ax.set_title("reconstruction error by code size")
        ax.legend()
        return fig

    def _recon(self, cfg: Config, models: dict, data):
        from sklearn.decomposition import PCA

        k, test, n = cfg.probe_size, data.test.x.numpy()[:10], 10
        pca = PCA(k, random_state=cfg.seed).fit(data.train.x.numpy())
        rows = [images(test), images(pca.inverse_transform(pca.transform(test))),
                images(_apply(models[f"linear-{k}"], test)),
                images(_apply(models[f"ae-{k}"], test))]
        names = ("input", "PCA", "linear AE", "non-linear AE")
        return grid(rows, [[name] + [""] * (n - 1) for name in names],
                    title=f"test digits and their reconstructions from {k} numbers")


def _apply(model: nn.Module, x: np.ndarray) -> np.ndarray:
    return _run(model, x, lambda m, t: m(t))


def _codes(model: nn.Module, x: np.ndarray) -> np.ndarray:
    return _run(model, x, lambda m, t: m.encode(t))


def _run(model: nn.Module, x: np.ndarray, fn) -> np.ndarray:
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return fn(model, torch.as_tensor(x, dtype=torch.float32, device=dev)).float() \
                .cpu().numpy()
    finally:
        model.train(was)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2).mean())
