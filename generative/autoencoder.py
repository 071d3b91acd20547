"""Autoencoder (dense or convolutional) squeezes the 8x8 digits (or MNIST / Fashion-MNIST)
through a small code."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from generative.common import ImageDataConfig, grid, images, latent_scatter, side
from labs import Lab, models, option, plots


@dataclass
class Config(ImageDataConfig):
    arch: str = option("dense", "encoder/decoder kind", choices=("dense", "conv"))
    hidden: list[int] = option([128], "dense encoder widths (the decoder mirrors them)", min=1)
    latent: int = option(8, "code size: the bottleneck (2 draws the code itself, more: its "
                            "PCA)", min=1)
    sparse_l1: float = option(0.0, "L1 weight on the code (0: off); a sparse code passes "
                                   "through ReLU so inactive units are exactly 0", min=0)
    epochs: int = option(80, "passes over the training data")
    lr: float = option(3e-3, "learning rate")


class AutoEncoder(nn.Module):
    """encoder: side*side pixels (64 for the digits) -> `latent` code; decoder: code -> the
    pixel intensities in [0, 1]. The conv version halves an even side once (8 -> 4, 28 -> 14)
    and doubles it back."""

    def __init__(self, arch: str, hidden: list[int], latent: int, relu_code: bool = False,
                 side: int = 8):
        super().__init__()
        if arch == "conv":
            if side % 2:
                raise ValueError(f"the conv autoencoder needs an even image side, not {side}")
            h = side // 2
            self.encoder = nn.Sequential(
                nn.Unflatten(1, (1, side, side)),
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),  # side / 2
                nn.Flatten(), nn.Linear(32 * h * h, latent))
            self.decoder = nn.Sequential(
                nn.Linear(latent, 32 * h * h), nn.ReLU(), nn.Unflatten(1, (32, h, h)),
                nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),  # side
                nn.Conv2d(16, 1, 3, padding=1), nn.Flatten())
        else:
            self.encoder = models.mlp(side * side, hidden, latent)
            self.decoder = models.mlp(latent, hidden[::-1], side * side)
        if relu_code:
            self.encoder.append(nn.ReLU())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def _sparse_terms(trainer, x, l1: float) -> dict:
    with trainer.autocast():
        z = trainer.model.encode(x)  # a custom step keeps the model unwrapped (no DDP)
        out = trainer.model.decode(z)
        mse = F.mse_loss(out.float(), x)
        penalty = z.float().abs().mean()
    return {"loss": mse + l1 * penalty, "mse": mse, "code_l1": penalty, "out": out}


def sparse_step(trainer, x, *, l1: float) -> dict:
    """Reconstruction MSE plus `l1` times the code's mean absolute value."""
    opt = trainer.optimizer
    opt.zero_grad(set_to_none=True)
    res = _sparse_terms(trainer, x, l1)
    trainer.backward(res["loss"])
    trainer.optimizer_step(opt)
    return {k: v.detach() for k, v in res.items()}


def sparse_eval_step(trainer, x, *, l1: float) -> dict:
    return _sparse_terms(trainer, x, l1)


class Autoencoder(Lab):
    """Autoencoder (dense or conv) compresses the 8x8 digits (or MNIST) to a small code and
    back."""

    lesson = "autoencoders"
    tags = ("generative", "autoencoder", "images")
    explains = "none"  # the anomaly-score explanation (LIME regression) is a later lab
    headline = "mse_ratio"
    Config = Config

    def data(self, cfg: Config):
        return cfg.images()

    def model(self, cfg: Config, data) -> nn.Module:
        return AutoEncoder(cfg.arch, cfg.hidden, cfg.latent, relu_code=cfg.sparse_l1 > 0,
                           side=side(data))

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        if cfg.sparse_l1 > 0:
            fit = run.fit(model, data, loss=nn.MSELoss(), metrics=(),
                          step=functools.partial(sparse_step, l1=cfg.sparse_l1),
                          eval_step=functools.partial(sparse_eval_step, l1=cfg.sparse_l1))
        else:  # the shared default step: an unlabelled batch is compared with the output
            fit = run.fit(model, data, loss=nn.MSELoss(), metrics=())
        run.figure("curves", plots.curves(fit.history, keys=("loss",), title="autoencoder"))
        metrics = self.evaluate(cfg, {"": model}, data)
        metrics["test_loss"] = fit.test["loss"]  # with sparse_l1: MSE + sparse_l1 * code_l1
        if "code_l1" in fit.test:
            metrics["test_code_l1"] = fit.test["code_l1"]
        self.figures(cfg, run, model, data)
        return metrics

    def evaluate(self, cfg: Config, models: dict, data) -> dict:
        """Test reconstruction MSE per pixel against the mean training image's, the share of
        inactive code units, and how often a test digit's nearest training code (Euclidean)
        is the same digit."""
        model = models[""]
        train, test = data.train.x, data.test.x
        with torch.no_grad():
            recon, z_test, z_train = _run(model, test, train)
        mse = float(((recon - test.numpy()) ** 2).mean())
        baseline = float(((test - train.mean(0)) ** 2).mean())
        labels = data.extras["labels"]
        nearest = _nearest(z_test, z_train, k=1)[:, 0]
        out = {"mse_ratio": mse / baseline, "test_mse": mse, "baseline_mse": baseline,
               "latent_nn_agreement": float((labels["train"][nearest] == labels["test"])
                                            .mean())}
        if cfg.sparse_l1 > 0:
            out["code_inactive"] = float((z_test == 0).mean())
            out["code_dead_units"] = float((z_test == 0).all(axis=0).sum())
        return out

    def figures(self, cfg: Config, run, model: nn.Module, data) -> None:
        test, train = data.test.x, data.train.x
        labels = data.extras["labels"]
        with torch.no_grad():
            recon, z_test, z_train = _run(model, test, train)
        n = 12
        run.figure("reconstructions", grid(
            [images(test[:n]), images(recon[:n])],
            [[f"input {d}" for d in labels["test"][:n]], ["reconstruction"] + [""] * (n - 1)],
            title=f"test {_what(cfg)} (top) and their reconstructions, code size {cfg.latent}"))
        run.figure("latent", latent_scatter(z_test, labels["test"],
                                            f"test codes (size {cfg.latent}) by class"))
        # "similar images": the training digits whose codes lie closest to a test digit's
        queries = [int(hits[0]) for d in range(10)
                   if len(hits := np.flatnonzero(labels["test"] == d))]
        near = _nearest(z_test[queries], z_train, k=6)
        rows = [[test[q].numpy()] + [train[j].numpy() for j in near[i]]
                for i, q in enumerate(queries)]
        titles = [[f"query {labels['test'][q]}"] + [str(labels["train"][j]) for j in near[i]]
                  for i, q in enumerate(queries)]
        run.figure("neighbours", grid(rows, titles, title=f"nearest training {_what(cfg)} by "
                                                          "code distance"))


def _what(cfg: Config) -> str:
    return "digits" if cfg.dataset in ("digits", "mnist") else "images"


def _run(model: nn.Module, test: torch.Tensor, train: torch.Tensor):
    """(test reconstructions, test codes, train codes) as numpy, on the model's device, in
    chunks of 4096 images (MNIST's 60,000 through the conv encoder at once: ~3 GB)."""
    dev = next(model.parameters()).device
    was = model.training
    model.eval()

    def chunks(x: torch.Tensor, fn) -> torch.Tensor:
        return torch.cat([fn(x[i:i + 4096].to(dev)).float().cpu()
                          for i in range(0, len(x), 4096)]) if len(x) else fn(x.to(dev))

    try:
        z_test = chunks(test, model.encode)
        recon = chunks(z_test, model.decode)
        z_train = chunks(train, model.encode)
    finally:
        model.train(was)
    return tuple(t.float().cpu().numpy() for t in (recon, z_test, z_train))


def _nearest(queries: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` rows of `pool` nearest each query (Euclidean), a chunk of queries
    at a time (MNIST's 10,000 x 60,000 codes would not fit in one difference array)."""
    step = max(1, 20_000_000 // max(1, pool.size))
    out = []
    for i in range(0, len(queries), step):
        d = ((queries[i:i + step, None, :] - pool[None, :, :]) ** 2).sum(-1)
        out.append(np.argsort(d, axis=1, kind="stable")[:, :k])
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)
