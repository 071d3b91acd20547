"""Variational autoencoder on the 8x8 digits (or MNIST / Fashion-MNIST): negative ELBO in
nats, samples, traversals.

Likelihood: `bernoulli` (default) models the digits binarized at half intensity (pixel >= 8
of 16), so the negative ELBO is an upper bound, in nats per image, on -log p(x) of a real
probability mass; `gaussian` models the grey levels in [0, 1] with a fixed `sigma`, a density
(its nats can be negative and are not comparable with the Bernoulli ones).

The digits-FID family of scores (generative/quality.py) judges 8x8 digits only: on MNIST it is
skipped (`quality_skipped` = 1 in the metrics, and a warning), never fed 28x28 images.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from generative import quality
from generative.common import ImageDataConfig, grid, images, latent_scatter, side
from labs import Lab, Trainer, models, option, plots


@dataclass
class Config(ImageDataConfig):
    hidden: list[int] = option([256], "encoder widths (the decoder mirrors them)", min=1)
    latent: int = option(8, "latent dimensions", min=1)
    beta: float = option(1.0, "weight of the KL term (1: the ELBO; >1: beta-VAE)", min=0)
    likelihood: str = option("bernoulli", "p(x|z): bernoulli on binarized digits, or "
                                          "gaussian on grey levels with a fixed sigma",
                             choices=("bernoulli", "gaussian"))
    sigma: float = option(0.1, "the gaussian likelihood's standard deviation", gt=0)
    iw_samples: int = option(200, "importance samples per test digit for the log-likelihood "
                                  "estimate (0: skip it)", min=0)
    epochs: int = option(100, "passes over the training data")
    lr: float = option(2e-3, "learning rate")


class VAE(nn.Module):
    """q(z|x) = N(mu, exp(logvar)) from a dense encoder; p(x|z) from a dense decoder's logits.

    `forward(x)` returns `(logits, mu, logvar)` with z drawn by reparameterization.
    """

    def __init__(self, hidden: list[int], latent: int, side: int = 8):
        super().__init__()
        self.latent, self.side = latent, side
        self.encoder = models.mlp(side * side, hidden, 2 * latent)
        self.decoder = models.mlp(latent, hidden[::-1], side * side)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterization
        return self.decoder(z), mu, logvar


def nll(logits: torch.Tensor, x: torch.Tensor, likelihood: str, sigma: float) -> torch.Tensor:
    """-log p(x|z) per image, in nats, summed over the pixels."""
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    z = (x - torch.sigmoid(logits)) / sigma
    return (0.5 * z ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)).sum(-1)


def _terms(trainer, x, *, beta: float, likelihood: str, sigma: float) -> dict:
    with trainer.autocast():
        logits, mu, logvar = trainer.model(x)
    mu, logvar = mu.float(), logvar.float()
    recon = nll(logits.float(), x, likelihood, sigma).mean()
    kl = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1)).mean()  # KL(q(z|x) || N(0, I))
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "nelbo": recon + kl}


def vae_step(trainer, x, **terms) -> dict:
    """One gradient step on reconstruction + beta * KL; logs all three (and the ELBO's)."""
    opt = trainer.optimizer
    opt.zero_grad(set_to_none=True)
    res = _terms(trainer, x, **terms)
    trainer.backward(res["loss"])
    trainer.optimizer_step(opt)
    return {k: v.detach() for k, v in res.items()}


def vae_eval_step(trainer, x, **terms) -> dict:
    """The same terms on held-out digits (one z per digit: an unbiased ELBO estimate)."""
    return _terms(trainer, x, **terms)


class VariationalAutoencoder(Lab):
    """VAE on the 8x8 digits (or MNIST): reconstruction + beta*KL, negative ELBO in nats,
    samples."""

    lesson = "autoencoders"
    tags = ("generative", "vae", "images")
    explains = "none"  # nothing to classify: LIME on anomaly scores is a later lab
    headline = "test_nelbo"
    Config = Config

    def data(self, cfg: Config):
        return cfg.images(binarize=cfg.likelihood == "bernoulli")

    def model(self, cfg: Config, data) -> nn.Module:
        return VAE(cfg.hidden, cfg.latent, side(data))

    def _steps(self, cfg: Config):
        terms = {"beta": cfg.beta, "likelihood": cfg.likelihood, "sigma": cfg.sigma}
        return (functools.partial(vae_step, **terms), functools.partial(vae_eval_step, **terms))

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        step, eval_step = self._steps(cfg)
        fit = run.fit(model, data, metrics=(), step=step, eval_step=eval_step)
        run.figure("curves", plots.curves(fit.history, keys=("loss", "recon", "kl"),
                                          title=f"vae ({cfg.likelihood}, beta={cfg.beta})"))
        metrics = {f"test_{k}": v for k, v in fit.test.items()}
        metrics.update(self._extra(cfg, model, data))
        self.figures(cfg, run, model, data)
        return metrics

    def evaluate(self, cfg: Config, models: dict, data) -> dict:
        """The test split through the lab's evaluation step, the baseline, and the
        importance-sampled log-likelihood (`lab eval`: a fresh z draw, so the ELBO terms
        differ from the run's by their sampling noise)."""
        model = models[""]
        _, eval_step = self._steps(cfg)
        device = next(model.parameters()).device
        trainer = Trainer(model, None, epochs=0, device=device, metrics=(), eval_step=eval_step)
        out = {f"test_{k}": v for k, v in trainer.evaluate(data.test).items()}
        return {**out, **self._extra(cfg, model, data)}

    def _extra(self, cfg: Config, model: VAE, data) -> dict:
        """The KL = 0 baseline (every digit drawn from the mean training image's pixels) and
        the importance-sampled -log p(x)."""
        train, test = data.train.x, data.test.x
        if cfg.likelihood == "bernoulli":  # Laplace-smoothed: a pixel never inked is not p=0
            p = (train.sum(0) + 1) / (len(train) + 2)
            base = nll(torch.logit(p).expand_as(test), test, "bernoulli", cfg.sigma)
        else:
            m = train.mean(0).clamp(1e-4, 1 - 1e-4)
            base = nll(torch.logit(m).expand_as(test), test, "gaussian", cfg.sigma)
        out = {"baseline_nll": float(base.mean())}
        if cfg.iw_samples:
            out["test_nll_iw"] = iw_nll(model, test, cfg.iw_samples, cfg.likelihood, cfg.sigma)
        return {**out, **self._quality(cfg, model, data)}

    def _quality(self, cfg: Config, model: VAE, data) -> dict:
        """512 prior samples (decoded means) judged like the GAN's (generative/quality.py:
        digits-FID against the training digits, digits-IS, coverage, train-on-synthetic /
        test-on-real) with the test digits' own FID as the floor; skipped (with a warning)
        on any other data set, since the judge is an 8x8 digits classifier."""
        if cfg.dataset != "digits":
            warnings.warn(quality.skipped_note("vae", cfg.dataset), RuntimeWarning, stacklevel=2)
            return {"quality_skipped": 1.0}
        samples = self.sample(cfg, {"": model}, 512, cfg.seed + 1).reshape(512, -1)
        train, test = data.train.x.numpy(), data.test.x.numpy()
        labels = data.extras["labels"]
        j = quality.judge()
        return {**quality.scores(samples, train, j),
                **quality.reference_scores(train, test, cfg.seed, j=j),
                **quality.tstr(samples, test, labels["test"], train, labels["train"], j)}

    def sample(self, cfg: Config, models: dict, n: int, seed: int) -> np.ndarray:
        """`lab sample`: `n` draws from the prior, decoded to their means (pixel
        probabilities, or grey levels), as (n, side, side) images in [0, 1] (8 for the
        digits, 28 for MNIST)."""
        model = models[""]
        device = next(model.parameters()).device
        z = torch.randn(n, cfg.latent, generator=torch.Generator().manual_seed(seed))
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                x = torch.sigmoid(model.decoder(z.to(device))).float().cpu().numpy()
        finally:
            model.train(was)
        return x.reshape(n, model.side, model.side)

    def figures(self, cfg: Config, run, model: VAE, data) -> None:
        device = next(model.parameters()).device
        test = data.test.x.to(device)
        labels = data.extras["labels"]["test"]
        model.eval()
        with torch.no_grad():
            def decode(z):  # E[x|z]: pixel probabilities, or grey levels (both a sigmoid)
                return torch.sigmoid(model.decoder(z))

            mu, _ = model.encode(test)
            n = 12
            run.figure("reconstructions", grid(
                [images(test[:n]), images(decode(mu[:n]))],
                [[f"input {d}" for d in labels[:n]], ["decoded mean"] + [""] * (n - 1)],
                title="test images (top) and the decoded posterior means"))
            run.figure("latent", latent_scatter(mu.cpu().numpy(), labels,
                                                f"posterior means (latent {cfg.latent})"))
            z = torch.randn(64, cfg.latent, device=device)
            samples = images(decode(z))
            run.figure("samples", grid([samples[i:i + 8] for i in range(0, 64, 8)],
                                       title="samples from the prior N(0, I) (decoded means)"))
            run.figure("traversal", self._traversal(cfg, decode, device))
            # interpolate between pairs of different digits, through the posterior means
            pairs = [(1, 7), (3, 8), (0, 6), (4, 9)]
            rows, titles = [], []
            for a, b in pairs:
                if not ((labels == a).any() and (labels == b).any()):
                    continue  # a tiny test split may lack a class
                i, j = (int(np.flatnonzero(labels == d)[0]) for d in (a, b))
                t = torch.linspace(0, 1, 10, device=device)[:, None]
                rows.append(images(decode((1 - t) * mu[i] + t * mu[j])))
                titles.append([str(a)] + [""] * 8 + [str(b)])
            run.figure("interpolation", grid(rows, titles,
                                             title="linear paths between posterior means"))

    def _traversal(self, cfg: Config, decode, device):
        """Latent 2: the decoded plane over the prior's quantiles; more: one row per
        dimension (up to 10) swept from -2.5 to 2.5 with the others at 0."""
        if cfg.latent == 2:
            from scipy.stats import norm

            q = torch.tensor(norm.ppf(np.linspace(0.05, 0.95, 10)), dtype=torch.float32)
            zz = torch.stack(torch.meshgrid(q, q.flip(0), indexing="xy"), -1).reshape(-1, 2)
            imgs = images(decode(zz.to(device)))
            return grid([imgs[i:i + 10] for i in range(0, 100, 10)],
                        title="the latent plane (5%..95% prior quantiles)")
        vals = torch.linspace(-2.5, 2.5, 9, device=device)
        rows, titles = [], []
        for d in range(min(cfg.latent, 10)):
            z = torch.zeros(len(vals), cfg.latent, device=device)
            z[:, d] = vals
            rows.append(images(decode(z)))
            titles.append([f"z{d + 1}={v:.1f}" if d == 0 else ("" if k else f"z{d + 1}")
                           for k, v in enumerate(vals.tolist())])
        return grid(rows, titles, title="latent traversal: one dimension at a time")


@torch.no_grad()
def iw_nll(model: VAE, x: torch.Tensor, k: int, likelihood: str, sigma: float,
           chunk: int = 64) -> float:
    """-log p(x) in nats per image, estimated with `k` importance samples from q(z|x)
    (the IWAE bound: tighter than the ELBO, and exact as k grows)."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    total = 0.0
    try:
        for i in range(0, len(x), chunk):
            xb = x[i:i + chunk].to(device)
            mu, logvar = model.encode(xb)
            std = torch.exp(0.5 * logvar)
            eps = torch.randn(k, *mu.shape, device=device)
            z = mu + eps * std  # (k, b, latent)
            log_q = (-0.5 * eps ** 2 - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_p_z = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
            logits = model.decoder(z.reshape(-1, z.shape[-1])).reshape(k, len(xb), -1)
            log_px_z = -nll(logits, xb.expand(k, *xb.shape), likelihood, sigma)
            log_w = log_px_z + log_p_z - log_q
            total += float(-(torch.logsumexp(log_w, 0) - math.log(k)).sum())
    finally:
        model.train(was)
    return total / len(x)
