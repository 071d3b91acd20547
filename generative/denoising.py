"""Denoising autoencoder: rebuild clean 8x8 digits from noisy ones (Gaussian or masking noise).

The network is `autoencoder`'s; only the step differs: the input is corrupted, the target is
the clean digit. The test compares the noisy input's squared error to the clean digit with the
denoised output's, at the trained noise level and across a sweep of levels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from generative.autoencoder import AutoEncoder
from generative.common import ImageDataConfig, grid, images, rebuild, side
from labs import Lab, option, plots


@dataclass
class Config(ImageDataConfig):
    noise: str = option("gaussian", "corruption: gaussian (add N(0, level²), clip to [0, 1]) "
                                    "or masking (each pixel set to 0 with probability level)",
                        choices=("gaussian", "masking"))
    level: float = option(0.3, "noise level: the gaussian's sigma, or the masking "
                               "probability", gt=0, lt=1)
    arch: str = option("dense", "encoder/decoder kind", choices=("dense", "conv"))
    hidden: list[int] = option([128], "dense encoder widths (the decoder mirrors them)", min=1)
    latent: int = option(32, "code size (a denoiser needs no tight bottleneck)", min=1)
    epochs: int = option(60, "passes over the training data")
    lr: float = option(3e-3, "learning rate")


def corrupt(x: torch.Tensor, kind: str, level: float,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Noisy copies of images in [0, 1] (the global RNG unless a CPU `generator` is given)."""
    if kind == "gaussian":
        eps = torch.randn(x.shape, generator=generator).to(x.device) if generator is not None \
            else torch.randn_like(x)
        return (x + level * eps).clamp(0, 1)
    u = torch.rand(x.shape, generator=generator).to(x.device) if generator is not None \
        else torch.rand_like(x)
    return x * (u >= level)


def denoise_step(trainer, x, *, kind: str, level: float) -> dict:
    """Corrupt the batch, rebuild it, and score the rebuild against the clean batch."""
    opt = trainer.optimizer
    opt.zero_grad(set_to_none=True)
    with trainer.autocast():
        loss = F.mse_loss(trainer.model(corrupt(x, kind, level)).float(), x)
    trainer.backward(loss)
    trainer.optimizer_step(opt)
    return {"loss": loss.detach()}


def denoise_eval_step(trainer, x, *, kind: str, level: float) -> dict:
    with trainer.autocast():
        return {"loss": F.mse_loss(trainer.model(corrupt(x, kind, level)).float(), x)}


class DenoisingAE(Lab):
    """Denoising autoencoder rebuilds clean digits from Gaussian- or mask-corrupted ones."""

    lesson = "autoencoders"
    tags = ("generative", "autoencoder", "images")
    explains = "none"
    headline = "denoise_ratio"
    Config = Config

    def data(self, cfg: Config):
        return cfg.images()

    def model(self, cfg: Config, data) -> nn.Module:
        return AutoEncoder(cfg.arch, cfg.hidden, cfg.latent, side=side(data))

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        noise = {"kind": cfg.noise, "level": cfg.level}
        fit = run.fit(model, data, metrics=(), step=functools.partial(denoise_step, **noise),
                      eval_step=functools.partial(denoise_eval_step, **noise))
        run.figure("curves", plots.curves(fit.history, keys=("loss",),
                                          title=f"denoising-ae ({cfg.noise} {cfg.level})"))
        metrics = self.evaluate(cfg, {"": model}, data)
        clean = data.test.x[:12]
        noisy = corrupt(clean, cfg.noise, cfg.level, torch.Generator().manual_seed(cfg.seed))
        run.figure("denoised", grid(
            [images(noisy), images(rebuild(model, noisy)), images(clean)],
            [["noisy"] + [""] * 11, ["denoised"] + [""] * 11, ["clean"] + [""] * 11],
            title=f"{cfg.noise} noise, level {cfg.level}: noisy, denoised, clean"))
        run.figure("sweep", self._sweep(cfg, model, data))
        return metrics

    def evaluate(self, cfg: Config, models: dict, data) -> dict:
        """Squared error per pixel to the clean test digits: of the noisy input, of the
        denoised output (one seeded noise draw), and of the mean training digit."""
        noisy_mse, denoised_mse = _errors(models[""], data.test.x, cfg.noise, cfg.level,
                                          cfg.seed)
        mean = float(((data.test.x - data.train.x.mean(0)) ** 2).mean())
        return {"denoise_ratio": denoised_mse / noisy_mse, "noisy_mse": noisy_mse,
                "denoised_mse": denoised_mse, "mean_image_mse": mean}

    def _sweep(self, cfg: Config, model: nn.Module, data):
        from matplotlib.figure import Figure

        levels = np.linspace(0.1, 0.9 if cfg.noise == "masking" else 0.6, 6)
        errs = np.array([_errors(model, data.test.x, cfg.noise, float(v), cfg.seed)
                         for v in levels])
        fig = Figure(figsize=(5.6, 3.8), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(levels, errs[:, 0], "o-", label="noisy input")
        ax.plot(levels, errs[:, 1], "o-", label="denoised")
        ax.axvline(cfg.level, color="grey", ls=":", label=f"trained at {cfg.level}")
        ax.set_xlabel(f"{cfg.noise} noise level")
        ax.set_ylabel("MSE to the clean digit (per pixel)")
        ax.legend()
        ax.set_title("error to the clean test digits")
        return fig


def _errors(model: nn.Module, clean: torch.Tensor, kind: str, level: float,
            seed: int) -> tuple[float, float]:
    """(noisy input's, denoised output's) MSE per pixel to `clean`, one seeded noise draw."""
    noisy = corrupt(clean, kind, level, torch.Generator().manual_seed(seed))
    return (float(F.mse_loss(noisy, clean)), float(F.mse_loss(rebuild(model, noisy), clean)))
