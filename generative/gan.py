"""A small GAN (MLP generator and discriminator, non-saturating loss) on the 8x8 digits (or
MNIST / Fashion-MNIST, where the digits-FID watch and scores are skipped: their judge is an
8x8 digits classifier).

The adversarial step, the fixed-noise progress figure and GIF, the digits-FID watch (best
checkpoint, stopping, mode-collapse and divergence warnings), `lab sample` and the LIME
subject for the discriminator live here once; `dcgan` swaps in convolutional players.
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
from generative.common import DATASETS, GreyImages, grid, images, side, tile, write_gif
from labs import (
    Callback,
    Lab,
    TrainConfig,
    checkpoint,
    default_subject,
    image_options,
    models,
    option,
    plots,
)

NO_JUDGE = "no digits-FID: its judge knows 8x8 digits only"  # dataset's help: off the digits


@dataclass
class GANConfig(GreyImages, image_options(DATASETS, note=NO_JUDGE), TrainConfig):
    """What every GAN lab shares: the course's tricks, the progress figures, the score watch."""

    noise: int = option(16, "noise dimensions the generator starts from", min=1)
    d_steps: int = option(1, "discriminator steps per generator step", min=1)
    label_smoothing: float = option(0.1, "real labels are 1 - this for the discriminator "
                                         "(one-sided smoothing)", min=0, lt=0.5)
    beta1: float = option(0.5, "Adam's first-moment decay for both players", min=0, lt=1)
    beta2: float = option(0.999, "Adam's second-moment decay for both players", min=0, lt=1)
    epochs: int = option(150, "passes over the training data")
    lr: float = option(1e-3, "learning rate of both players")
    batch_size: int = option(64, "real digits per step")
    progress_every: int = option(25, "epochs between rows of the progress figure", min=1)
    gif_every: int = option(5, "epochs between frames of the progress GIF", min=1)
    score_every: int = option(10, "epochs between digits-FID evaluations of 512 samples "
                                  "(also after epoch 1 and the last; 0: never)", min=0)
    stop_patience: int = option(0, "stop after this many digits-FID evaluations without a new "
                                   "best (0: train every epoch)", min=0)
    keep_best: bool = option(True, "keep the generator of the best digits-FID evaluation, not "
                                   "the last epoch's (GAN losses oscillate)")
    test_size: float = option(0.2, "held-out test fraction (stratified by digit)", gt=0, lt=1)


@dataclass
class Config(GANConfig):
    hidden: list[int] = option([128, 256], "generator widths (the discriminator mirrors them)",
                               min=1)


class Players(nn.Module):
    """The two networks of a GAN, as one module (one checkpoint): subclasses set `noise`,
    `side`, `generator` (noise -> side*side pixels in [0, 1]) and `discriminator` (pixels ->
    a logit)."""

    noise: int
    side: int = 8

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        dev = next(self.parameters()).device
        return self.generator(torch.randn(n, self.noise, generator=generator).to(dev))


class GAN(Players):
    """Dense players: leaky-ReLU MLPs, the discriminator mirroring the generator's widths."""

    def __init__(self, noise: int, hidden: list[int], side: int = 8):
        super().__init__()
        self.noise, self.side = noise, side
        self.generator = nn.Sequential(models.mlp(noise, hidden, side * side, "leaky_relu"),
                                       nn.Sigmoid())
        self.discriminator = models.mlp(side * side, hidden[::-1], 1, "leaky_relu")


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


COLLAPSE_DROP = 3  # class coverage this far below its peak is mode collapse
COLLAPSE_FLOOR = 6  # ... and so is covering fewer digits than this
DIVERGE_MARGIN = 0.05  # D loss within this of its minimum: D wins outright, G learns nothing


def d_loss_floor(smooth: float) -> float:
    """The smallest discriminator loss possible with one-sided label smoothing: the entropy
    of the smoothed real label (0 without smoothing)."""
    p = 1.0 - smooth
    return 0.0 if p >= 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def troubles(coverage: float | None, peak: float, d_loss: float | None,
             smooth: float) -> list[str]:
    """What went wrong in one evaluation: "collapse" (class coverage fell by COLLAPSE_DROP
    from its peak, or below COLLAPSE_FLOOR after reaching it; an untrained generator's low
    coverage is no collapse) and "divergence" (D loss at its floor)."""
    out = []
    if coverage is not None and (coverage <= peak - COLLAPSE_DROP or
                                 coverage < COLLAPSE_FLOOR <= peak):
        out.append("collapse")
    if d_loss is not None and d_loss < d_loss_floor(smooth) + DIVERGE_MARGIN:
        out.append("divergence")
    return out


class Progress(Callback):
    """Samples of one fixed noise batch: a row of the progress figure (and a W&B image on the
    epoch axis) every `every` epochs, a GIF frame every `gif_every` (not kept across
    `--resume`)."""

    def __init__(self, run, every: int, gif_every: int, n: int = 10, seed: int = 0):
        self.run, self.every, self.gif_every, self.n, self.seed = run, every, gif_every, n, seed
        self.rows: list[tuple[int, list]] = []
        self.frames: list = []

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        last = epoch == trainer.epochs
        row = epoch % self.every == 0 or last or epoch == 1
        frame = epoch % self.gif_every == 0 or last
        if not (row or frame or epoch == 1):
            return
        with torch.no_grad():
            x = _draw(trainer.model, 64, self.seed)
        if row:  # a rendered figure costs ~0.1 s: only at the progress figure's rows
            self.rows.append((epoch, images(x[:self.n])))
            self.run.figure("samples_by_epoch", grid([images(x[i:i + 8]) for i in range(0, 64, 8)],
                                                     title=f"fixed noise, epoch {epoch}"),
                            step=epoch)
        if frame or epoch == 1:
            self.frames.append(tile(x))
        self.seen = epoch

    def on_fit_end(self, trainer) -> None:
        """A run stopped early (stop_patience) still shows where it stopped."""
        end = getattr(self, "seen", 0)
        if end and (not self.rows or self.rows[-1][0] != end):
            with torch.no_grad():
                x = _draw(trainer.model, 64, self.seed)
            self.rows.append((end, images(x[:self.n])))
            self.frames.append(tile(x))


class Quality(Callback):
    """digits-FID of 512 samples every `every` epochs (and after the first and the last),
    logged on the epoch axis; the best generator kept in `checkpoints/best_fid.pt` (and put
    back at the end with `keep_best`); mode collapse (a coverage fall in two evaluations in a
    row, or too few digits at the end) and divergence warned about, once each."""

    def __init__(self, run, reference, *, every: int, seed: int, smooth: float,
                 patience: int = 0, keep_best: bool = True, n: int = 512):
        self.run, self.reference, self.every, self.seed = run, reference, every, seed
        self.smooth, self.patience, self.keep_best, self.n = smooth, patience, keep_best, n
        self.path = run.checkpoints / "best_fid.pt"
        self.judge = quality.judge() if every else None  # no watch: no judge trained or read
        self.best, self.best_epoch, self.first, self.stale = math.inf, 0, math.nan, 0
        self.peak, self.min_coverage, self.d_min = 0.0, math.inf, math.inf
        self.flags = {"collapse": 0, "divergence": 0}
        self.last_coverage = math.inf  # of the latest evaluation (inf: none yet)
        self.falls = 0  # consecutive evaluations with a coverage fall

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        d_loss = logs.get("train_d_loss")
        if d_loss is not None:
            self.d_min = min(self.d_min, float(d_loss))
        due = self.every and (epoch % self.every == 0 or epoch == 1 or epoch == trainer.epochs)
        s = None
        if due:
            with torch.no_grad():
                x = _draw(trainer.model, self.n, self.seed + 2)
            s = quality.scores(x, self.reference, self.judge)
            self.run.log(s, step=epoch, axis="epoch")
            self.peak = max(self.peak, s["class_coverage"])
            self.min_coverage = min(self.min_coverage, s["class_coverage"])
            if epoch == 1:
                self.first = s["digits_fid"]
            if s["digits_fid"] < self.best:
                self.best, self.best_epoch, self.stale = s["digits_fid"], epoch, 0
                checkpoint.save({"model": trainer.model.state_dict(), "epoch": epoch,
                                 "digits_fid": self.best}, self.path)
            else:
                self.stale += 1
                if self.patience and self.stale >= self.patience:
                    trainer.should_stop = True
        if s is not None:
            self.last_coverage = s["class_coverage"]
        found = troubles(s and s["class_coverage"], self.peak, d_loss, self.smooth)
        if s is not None:  # coverage wobbles early on: a collapse persists two evaluations
            self.falls = self.falls + 1 if "collapse" in found else 0
        for kind in found:
            if kind != "collapse" or self.falls >= 2:
                self._flag(kind, epoch, d_loss)

    def _flag(self, kind: str, epoch: int, d_loss: float | None, at_end: bool = False) -> None:
        self.flags[kind] += 1
        if self.flags[kind] > 1:
            return  # one warning line per kind; the metric counts them all
        only = "only " if at_end else ""
        what = (f"samples cover {only}{self.last_coverage:.0f} of 10 digits (peak "
                f"{self.peak:.0f})" if kind == "collapse" else
                f"discriminator loss {d_loss:.3f} is at its floor "
                f"{d_loss_floor(self.smooth):.3f}: the generator gets no gradient")
        warnings.warn(f"gan: {'mode collapse' if kind == 'collapse' else 'divergence'} at "
                      f"epoch {epoch}: {what}", RuntimeWarning, stacklevel=3)

    def on_fit_end(self, trainer) -> None:
        if self.last_coverage < COLLAPSE_FLOOR and not self.flags["collapse"]:
            self._flag("collapse", trainer.epoch, None, at_end=True)  # never covered them

        if self.keep_best and self.path.is_file():
            best = checkpoint.load(self.path, require=("model",))
            trainer.model.load_state_dict(best["model"])

    def metrics(self) -> dict[str, float]:
        return {"best_digits_fid": self.best, "best_epoch": float(self.best_epoch),
                "first_digits_fid": self.first, "min_class_coverage": self.min_coverage,
                "collapse_warnings": float(self.flags["collapse"]),
                "divergence_warnings": float(self.flags["divergence"]),
                "train_d_loss_min": self.d_min}

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "first": self.first,
                "stale": self.stale, "peak": self.peak, "min_coverage": self.min_coverage,
                "d_min": self.d_min, "flags": dict(self.flags),
                "last_coverage": self.last_coverage, "falls": self.falls}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.first = state["best"], state["best_epoch"], state["first"]
        self.stale, self.peak, self.min_coverage = state["stale"], state["peak"], \
            state["min_coverage"]
        self.d_min, self.flags = state["d_min"], dict(state["flags"])
        self.last_coverage, self.falls = state["last_coverage"], state["falls"]


def _draw(net: nn.Module, n: int, seed: int) -> torch.Tensor:
    """`n` samples of a fixed noise batch (seeded), in eval mode, on the CPU."""
    was = net.training
    net.eval()
    try:
        return net.sample(n, torch.Generator().manual_seed(seed)).float().cpu()
    finally:
        net.train(was)


class DigitsGAN(Lab):
    """GAN (MLP generator vs discriminator, two optimizers) draws 8x8 digits (or MNIST) from
    noise."""

    lesson = "gans"
    tags = ("generative", "gan", "images")
    explains = "image"  # LIME: which pixels make the discriminator call a digit real or fake
    headline = "digits_fid"
    Config = Config

    def data(self, cfg: Config):
        return cfg.images()

    def model(self, cfg: Config, data) -> nn.Module:
        return GAN(cfg.noise, cfg.hidden, side(data))

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        gan = self.model(cfg, data)
        betas = (cfg.beta1, cfg.beta2)
        opts = {"d": torch.optim.Adam(gan.discriminator.parameters(), cfg.lr, betas=betas),
                "g": torch.optim.Adam(gan.generator.parameters(), cfg.lr, betas=betas)}
        progress = Progress(run, cfg.progress_every, cfg.gif_every, seed=cfg.seed)
        judged = cfg.dataset == "digits"  # the judge knows 8x8 digits only: no score watch
        if not judged:
            warnings.warn(quality.skipped_note(self.name or "gan", cfg.dataset),
                          RuntimeWarning, stacklevel=2)
        watch = Quality(run, data.train.x, every=cfg.score_every if judged else 0,
                        seed=cfg.seed, smooth=cfg.label_smoothing, patience=cfg.stop_patience,
                        keep_best=cfg.keep_best and judged)
        # GAN losses say little about sample quality: no monitored loss; digits-FID instead
        fit = run.fit(gan, data, optimizer=opts, metrics=(), monitor="none",
                      step=functools.partial(gan_step, d_steps=cfg.d_steps,
                                             smooth=cfg.label_smoothing),
                      eval_step=gan_eval_step, callbacks=[progress, watch])
        run.figure("curves", plots.curves(fit.history, keys=("d_loss", "g_loss"),
                                          title=self.name or "gan"))
        gan.eval()
        samples = images(_draw(gan, 64, cfg.seed))
        kept = f"best digits-FID, epoch {watch.best_epoch}" if cfg.keep_best and \
            watch.best_epoch else "last epoch"
        run.figure("samples", grid([samples[i:i + 8] for i in range(0, 64, 8)],
                                   title=f"generator samples ({kept})"))
        rows = [r for _, r in progress.rows]
        titles = [[f"epoch {e}"] + [""] * (len(r) - 1) for e, r in progress.rows]
        run.figure("progress", grid(rows, titles, title="one fixed noise batch over training"))
        run.video("progress_animation",
                  write_gif(progress.frames, run.dir / "figures" / "progress.gif"), fps=4)
        last = fit.history.last
        watched = watch.metrics() if judged else {
            k: v for k, v in watch.metrics().items()
            if k in ("divergence_warnings", "train_d_loss_min")}
        return {**self.evaluate(cfg, {"": gan}, data), **watched,
                **{f"test_{k}": v for k, v in fit.test.items()},
                "train_d_loss": last.get("train_d_loss", float("nan")),
                "train_g_loss": last.get("train_g_loss", float("nan"))}

    def evaluate(self, cfg: Config, models: dict, data) -> dict:
        """512 samples against real digits: digits-FID, digits-IS, confidence and class
        coverage (generative/quality.py: a framework-trained digits classifier, NOT
        Inception), train-on-synthetic / test-on-real accuracy, the yardsticks (test digits'
        FID: the floor; uniform noise's), and the mean squared distance (per pixel) to the
        nearest training digit against noise's and the test digits'."""
        gan = models[""]
        train, test = data.train.x.numpy(), data.test.x.numpy()
        with torch.no_grad():
            samples = _draw(gan, 512, cfg.seed + 1).numpy()
        if cfg.dataset == "digits":
            j = quality.judge()
            labels = data.extras["labels"]
            out = {**quality.scores(samples, train, j),
                   **quality.reference_scores(train, test, cfg.seed, j=j),
                   **quality.tstr(samples, test, labels["test"], train, labels["train"], j)}
        else:  # the judge knows 8x8 digits only (the run warned once already)
            out = {"quality_skipped": 1.0}
        rng = np.random.default_rng(cfg.seed)
        noise = rng.uniform(0, 1, size=(512, train.shape[1])).astype(np.float32)
        s, n, t = (_nn_mse(a, train) for a in (samples, noise, test))
        return {**out, "sample_nn_ratio": s / n, "sample_nn_mse": s, "noise_nn_mse": n,
                "test_nn_mse": t}

    def sample(self, cfg: Config, models: dict, n: int, seed: int) -> np.ndarray:
        """`lab sample`: `n` generator samples as (n, side, side) images in [0, 1] (8 for the
        digits, 28 for MNIST)."""
        s = models[""].side
        with torch.no_grad():
            return _draw(models[""], n, seed).numpy().reshape(n, s, s)

    def subjects(self, cfg: Config, model, data) -> dict:
        """The discriminator's real/fake decision (class 1: real) on test digits and
        generator samples, alternating: LIME shows which pixels make a digit look real."""
        gan = model[""] if isinstance(model, dict) else model
        n = max(cfg.explain_samples, 2)
        with torch.no_grad():
            fakes = _draw(gan, n, cfg.seed + 3).numpy()
        reals = data.test.x[:n].numpy()
        pixels = gan.side * gan.side
        samples = np.stack([reals, fakes], 1).reshape(2 * n, pixels)
        subject = default_subject("image", gan, data, cfg, samples=samples,
                                  labels=np.array(["real", "fake"] * n))

        def predict(x: np.ndarray) -> np.ndarray:
            d = gan.discriminator
            dev = next(d.parameters()).device
            with torch.no_grad():
                p = torch.sigmoid(d(torch.as_tensor(x, dtype=torch.float32, device=dev)
                                    .reshape(len(x), pixels)).float()).cpu().numpy().reshape(-1)
            return np.stack([1 - p, p], 1)

        subject.predict, subject.mode, subject.class_names = predict, "classification", \
            ["fake", "real"]
        return {"": subject}


def _nn_mse(x: np.ndarray, pool: np.ndarray) -> float:
    """Mean over `x` of the per-pixel squared distance to the nearest row of `pool`, a chunk
    of rows at a time (MNIST's 10,000 test x 60,000 training distances would take 4.8 GB)."""
    step = max(1, 20_000_000 // max(1, len(pool)))
    sq = (pool ** 2).sum(1)[None, :]
    near = [((c ** 2).sum(1)[:, None] - 2 * c @ pool.T + sq).min(1)
            for c in (x[i:i + step] for i in range(0, len(x), step))]
    return float(np.maximum(np.concatenate(near), 0).mean() / x.shape[1])
