"""A small GAN (MLP generator and discriminator, non-saturating loss) on the 8x8 digits."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from generative.common import digits01, grid, images
from labs import Callback, Lab, TrainConfig, models, option, plots


@dataclass
class Config(TrainConfig):
    noise: int = option(16, "noise dimensions the generator starts from", min=1)
    hidden: list[int] = option([128, 256], "generator widths (the discriminator mirrors them)",
                               min=1)
    d_steps: int = option(1, "discriminator steps per generator step", min=1)
    label_smoothing: float = option(0.1, "real labels are 1 - this for the discriminator "
                                         "(one-sided smoothing)", min=0, lt=0.5)
    beta1: float = option(0.5, "Adam's first-moment decay for both players", min=0, lt=1)
    epochs: int = option(150, "passes over the training data")
    lr: float = option(1e-3, "learning rate of both players")
    batch_size: int = option(64, "real digits per step")
    progress_every: int = option(25, "epochs between rows of the progress figure", min=1)
    test_size: float = option(0.2, "held-out test fraction (stratified by digit)", gt=0, lt=1)


class GAN(nn.Module):
    """`generator`: noise -> 64 pixels in [0, 1]; `discriminator`: pixels -> real/fake logit."""

    def __init__(self, noise: int, hidden: list[int]):
        super().__init__()
        self.noise = noise
        self.generator = nn.Sequential(models.mlp(noise, hidden, 64, "leaky_relu"),
                                       nn.Sigmoid())
        self.discriminator = models.mlp(64, hidden[::-1], 1, "leaky_relu")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        dev = next(self.parameters()).device
        return self.generator(torch.randn(n, self.noise, generator=generator).to(dev))


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(
        logits, target, dtype=torch.float32))


def gan_step(trainer, x, *, d_steps: int, smooth: float) -> dict:
    """`d_steps` discriminator steps, then one generator step (non-saturating: G maximizes
    log D(G(z)) rather than minimizing log(1 - D(G(z))), which vanishes early on)."""
    net, opt_d, opt_g = trainer.model, trainer.optimizer["d"], trainer.optimizer["g"]
    for _ in range(d_steps):
        opt_d.zero_grad(set_to_none=True)
        with trainer.autocast():
            fake = net.sample(len(x)).detach()
            d_real, d_fake = net.discriminator(x), net.discriminator(fake)
            d_loss = _bce(d_real, 1.0 - smooth) + _bce(d_fake, 0.0)
        trainer.backward(d_loss)
        trainer.optimizer_step(opt_d)
    opt_g.zero_grad(set_to_none=True)
    with trainer.autocast():
        g_loss = _bce(net.discriminator(net.sample(len(x))), 1.0)
    trainer.backward(g_loss)
    trainer.optimizer_step(opt_g)
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
            "d_real": torch.sigmoid(d_real.detach().float()).mean(),
            "d_fake": torch.sigmoid(d_fake.detach().float()).mean()}


def gan_eval_step(trainer, x) -> dict:
    """Both players' losses on held-out real digits and fresh fakes (no label smoothing)."""
    net = trainer.model
    with trainer.autocast():
        d_real, d_fake = net.discriminator(x), net.discriminator(net.sample(len(x)))
    return {"d_loss": _bce(d_real, 1.0) + _bce(d_fake, 0.0), "g_loss": _bce(d_fake, 1.0),
            "d_real": torch.sigmoid(d_real.float()).mean(),
            "d_fake": torch.sigmoid(d_fake.float()).mean()}


class Progress(Callback):
    """Samples of one fixed noise batch every `every` epochs (for the progress figure; not
    kept across `--resume`)."""

    def __init__(self, every: int, n: int = 10, seed: int = 0):
        self.every, self.n, self.seed = every, n, seed
        self.rows: list[tuple[int, list]] = []

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if epoch % self.every == 0 or epoch == trainer.epochs:
            net = trainer.model
            was = net.training
            net.eval()
            with torch.no_grad():
                g = torch.Generator().manual_seed(self.seed)
                self.rows.append((epoch, images(net.sample(self.n, g).float())))
            net.train(was)


class DigitsGAN(Lab):
    """GAN (MLP generator vs discriminator, two optimizers) draws 8x8 digits from noise."""

    lesson = "gans"
    tags = ("generative", "gan", "images")
    explains = "none"  # the discriminator's real/fake decision under LIME is a later item
    headline = "sample_nn_ratio"
    Config = Config

    def data(self, cfg: Config):
        return digits01(test_size=cfg.test_size, val_size=0.0, seed=cfg.seed)

    def model(self, cfg: Config, data) -> nn.Module:
        return GAN(cfg.noise, cfg.hidden)

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        gan = self.model(cfg, data)
        betas = (cfg.beta1, 0.999)
        opts = {"d": torch.optim.Adam(gan.discriminator.parameters(), cfg.lr, betas=betas),
                "g": torch.optim.Adam(gan.generator.parameters(), cfg.lr, betas=betas)}
        progress = Progress(cfg.progress_every, seed=cfg.seed)
        # GAN losses say little about sample quality: no monitored metric, so no best.pt
        fit = run.fit(gan, data, optimizer=opts, metrics=(), monitor="none",
                      step=functools.partial(gan_step, d_steps=cfg.d_steps,
                                             smooth=cfg.label_smoothing),
                      eval_step=gan_eval_step, callbacks=[progress])
        run.figure("curves", plots.curves(fit.history, keys=("d_loss", "g_loss"), title="gan"))
        gan.eval()
        with torch.no_grad():
            g = torch.Generator().manual_seed(cfg.seed)
            samples = images(gan.sample(64, g).float())
        run.figure("samples", grid([samples[i:i + 8] for i in range(0, 64, 8)],
                                   title="generator samples"))
        rows = [r for _, r in progress.rows]
        titles = [[f"epoch {e}"] + [""] * (len(r) - 1) for e, r in progress.rows]
        run.figure("progress", grid(rows, titles, title="one fixed noise batch over training"))
        last = fit.history.last
        return {**self.evaluate(cfg, {"": gan}, data),
                **{f"test_{k}": v for k, v in fit.test.items()},
                "train_d_loss": last.get("train_d_loss", float("nan")),
                "train_g_loss": last.get("train_g_loss", float("nan"))}

    def evaluate(self, cfg: Config, models: dict, data) -> dict:
        """How close samples come to real digits: the mean squared distance (per pixel) of
        512 samples to their nearest training digit, against uniform noise's and against the
        test digits' own (the floor). Not a substitute for a classifier-based score."""
        gan = models[""]
        train = data.train.x.numpy()
        with torch.no_grad():
            g = torch.Generator().manual_seed(cfg.seed + 1)
            samples = gan.sample(512, g).float().cpu().numpy()
        rng = np.random.default_rng(cfg.seed)
        noise = rng.uniform(0, 1, size=(512, 64)).astype(np.float32)
        s, n, t = (_nn_mse(a, train) for a in (samples, noise, data.test.x.numpy()))
        return {"sample_nn_ratio": s / n, "sample_nn_mse": s, "noise_nn_mse": n,
                "test_nn_mse": t}


def _nn_mse(x: np.ndarray, pool: np.ndarray) -> float:
    """Mean over `x` of the per-pixel squared distance to the nearest row of `pool`."""
    d = (x ** 2).sum(1)[:, None] - 2 * x @ pool.T + (pool ** 2).sum(1)[None, :]
    return float(np.maximum(d.min(1), 0).mean() / x.shape[1])
