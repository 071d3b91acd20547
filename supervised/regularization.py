"""An MLP overfits a small digits training split; L2, L1, dropout, batch norm, early stopping
and augmentation each narrow the gap between training and test accuracy."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from labs import (
    Lab,
    SplitConfig,
    augmented_step,
    callbacks,
    datasets,
    default_subject,
    forward,
    images,
    option,
    plots,
    variants,
)

VARIANTS = ("baseline", "l2", "l1", "dropout", "bn_before", "bn_after", "early_stop",
            "augment")


@dataclass
class Config(SplitConfig):
    hidden: list[int] = option([256, 256], "hidden layer widths (wide: it overfits)", min=1)
    test_size: float = option(0.65, "held-out test fraction")
    val_size: float = option(0.3, "validation fraction (curves, early stopping); training "
                                  "gets what is left: 5% of 1,797 digits, ~90")
    epochs: int = option(150, "passes over the small training split")
    batch_size: int = option(32, "samples per gradient step")
    lr: float = option(1e-3, "learning rate (Adam)")
    l2: float = option(3e-3, "L2 strength: loss + l2 * sum(w^2) over the weight matrices",
                       min=0)
    l1: float = option(5e-4, "L1 strength: a proximal (soft-threshold) step after each "
                             "Adam step drives weights to exactly zero", min=0)
    dropout: float = option(0.5, "dropout rate of the dropout variant", min=0, lt=1)
    patience: int = option(8, "early_stop variant: epochs without a better val_loss before "
                              "it stops; it then goes back to the weights of its best epoch",
                           min=1)
    shift: int = option(1, "augment variant: random shifts of up to this many pixels", min=1)
    variants: list[str] = option(list(VARIANTS), "which variants to train", choices=VARIANTS)
    grid_l2: list[float] = option([0.0, 1e-3, 1e-2], "L2 strengths of the grid (empty: no "
                                                     "grid)", min=0)
    grid_dropout: list[float] = option([0.0, 0.25, 0.5], "dropout rates of the grid", min=0,
                                       lt=1)


@dataclass(frozen=True)
class Spec:
    """What one variant changes: the network (dropout, batch norm) and the step."""

    dropout: float = 0.0
    bn: str = "none"  # "before" or "after" the activation
    l2: float = 0.0
    l1: float = 0.0
    augment: int = 0
    patience: int = 0


def specs(cfg: Config) -> dict[str, Spec]:
    """Every variant and grid cell of the run, by name."""
    named = {"baseline": Spec(), "l2": Spec(l2=cfg.l2), "l1": Spec(l1=cfg.l1),
             "dropout": Spec(dropout=cfg.dropout), "bn_before": Spec(bn="before"),
             "bn_after": Spec(bn="after"), "early_stop": Spec(patience=cfg.patience),
             "augment": Spec(augment=cfg.shift)}
    out = {name: named[name] for name in cfg.variants}
    for a in cfg.grid_l2:
        for p in cfg.grid_dropout:
            out[grid_name(a, p)] = Spec(dropout=p, l2=a)
    return out


def grid_name(l2: float, dropout: float) -> str:
    return f"grid_l2_{l2:g}_drop_{dropout:g}"


def net(n_in: int, hidden: list[int], n_out: int, spec: Spec) -> nn.Sequential:
    """Linear (+ BN) + ReLU (+ BN) (+ dropout) per hidden width, then a linear output."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = n_in
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if spec.bn == "before":
            layers.append(nn.BatchNorm1d(h))
        layers.append(nn.ReLU())
        if spec.bn == "after":
            layers.append(nn.BatchNorm1d(h))
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices the penalties act on (not biases, not batch-norm scales)."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


def penalized_step(trainer, batch, l2: float = 0.0, l1: float = 0.0) -> dict:
    """The supervised step with an L2 penalty in the loss and an L1 proximal step.

    L1's gradient never makes a weight exactly zero (it only oscillates around it), so L1 is
    applied as its proximal operator after the Adam step: each weight shrinks towards zero by
    lr * l1 / (Adam's per-weight step scale) and stops at exactly zero (a soft threshold in
    Adam's metric, as in proximal gradient descent).
    """
    opt = trainer.optimizer
    opt.zero_grad(set_to_none=True)
    with trainer.autocast():
        out, target, _ = forward(trainer, batch)
        loss = trainer.loss_fn(out, target)
        penalty = sum(w.pow(2).sum() for w in weights(trainer.model)) if l2 > 0 else 0.0
    trainer.backward(loss + l2 * penalty)
    trainer.optimizer_step(opt)
    if l1 > 0:
        _soft_threshold(trainer.model, opt, l1)
    return {"loss": loss.detach(), "out": out.detach()}


@torch.no_grad()
def _soft_threshold(model: nn.Module, opt: torch.optim.Optimizer, l1: float) -> None:
    group = opt.param_groups[0]
    lr, (_, beta2), eps = group["lr"], group.get("betas", (0.9, 0.999)), group.get("eps", 1e-8)
    for w in weights(model):
        state = opt.state.get(w, {})
        if "exp_avg_sq" in state:  # Adam: the prox in its diagonal metric
            t = float(state["step"])
            scale = (state["exp_avg_sq"] / (1 - beta2 ** t)).sqrt() + eps
        else:  # plain gradient descent: the textbook prox
            scale = torch.ones_like(w)
        w.copy_(w.sign() * (w.abs() - lr * l1 / scale).clamp(min=0))


class Regularization(Lab):
    """An MLP overfits 90 digits; L2, L1, dropout, batch norm, early stop, augmentation vs it.

    A table of generalization gaps, and an L2 x dropout grid."""

    lesson = "regularization"
    tags = ("supervised", "mlp", "regularization", "images")
    explains = "image"
    headline = "best_loss_gap"
    Config = Config

    def data(self, cfg: Config):
        from sklearn.datasets import load_digits

        d = load_digits()
        # pixels in [0, 1] unstandardized: a shifted digit's new border is background (0)
        return datasets.from_arrays(d.data / 16.0, d.target, test_size=cfg.test_size,
                                    val_size=cfg.val_size, scale=False, seed=cfg.seed,
                                    image_shape=(8, 8), pixel_max=1.0)

    def model(self, cfg: Config, data) -> dict[str, nn.Module]:
        return {name: net(data.n_features, cfg.hidden, data.n_classes, spec)
                for name, spec in specs(cfg).items()}

    def subjects(self, cfg: Config, model, data) -> dict:
        """LIME on the baseline and the L1 net only (not on every grid cell): the L1 net's
        zeroed pixel weights should get no importance."""
        return {name: default_subject("image", model[name], data, cfg)
                for name in ("baseline", "l1") if name in model}

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        nets = self.model(cfg, data)
        plan, stopper = {}, {}
        for name, spec in specs(cfg).items():
            step = functools.partial(penalized_step, l2=spec.l2, l1=spec.l1)
            if spec.augment:
                step = augmented_step(images.random_shifts(spec.augment, data.image_shape),
                                      step)
            fit = {"step": step}
            if spec.patience:  # early stopping proper: the model of the best epoch, kept
                stopper[name] = callbacks.EarlyStopping(spec.patience, monitor="val_loss",
                                                        restore_best=True)
                fit["callbacks"] = [stopper[name]]
            plan[name] = variants.Variant(nets[name], fit=fit)
        results = variants.fit_all(run, plan, data, loss=nn.CrossEntropyLoss())

        gaps = {name: generalization(r, data) for name, r in results.items()}
        named = [n for n in results if not n.startswith("grid_")]
        columns = ["train_acc", "test_acc", "acc_gap", "train_loss", "test_loss", "loss_gap",
                   "zero_weights", "epochs"]
        run.table("generalization", ["variant", *columns],
                  [[n, *(gaps[n][c] for c in columns)] for n in results])
        if named:
            shown = {n: results[n] for n in named}
            run.figure("curves", train_val_curves(
                shown, {n: es.best_epoch for n, es in stopper.items() if n in shown}))
            run.figure("acc_gaps", variants.bars(
                {n: gaps[n]["acc_gap"] for n in named}, "train acc - test acc",
                title="accuracy gap (lower is better)"))
            run.figure("loss_gaps", variants.bars(
                {n: gaps[n]["loss_gap"] for n in named}, "test loss - train loss",
                title="loss gap (lower is better)"))
            run.figure("weights", weight_histograms({n: results[n].fit.model for n in named
                                                     if n in ("baseline", "l2", "l1")}))
        if cfg.grid_l2 and cfg.grid_dropout:
            for key, label in (("test_acc", "test accuracy"), ("acc_gap", "acc gap")):
                grid = np.array([[gaps[grid_name(a, p)][key] for p in cfg.grid_dropout]
                                 for a in cfg.grid_l2])
                run.figure(f"grid_{key}", plots.heatmap(
                    grid, cfg.grid_l2, cfg.grid_dropout, row_label="L2 strength",
                    col_label="dropout rate", colorbar=label,
                    cmap="viridis" if key == "test_acc" else "viridis_r",
                    title=f"{label}: L2 x dropout"))

        metrics: dict[str, float] = {}
        for n in named:
            metrics[f"{n}_acc_gap"] = gaps[n]["acc_gap"]
            metrics[f"{n}_loss_gap"] = gaps[n]["loss_gap"]
            metrics[f"{n}_test_acc"] = gaps[n]["test_acc"]
        regularized = [n for n in named if n != "baseline"]
        if regularized:
            for key in ("loss_gap", "acc_gap"):
                best = min(regularized, key=lambda n: gaps[n][key])
                metrics[f"best_{key}"] = gaps[best][key]
                print(f"smallest {key.replace('_', ' ')}: {best} ({gaps[best][key]:.3f}"
                      + (f" vs baseline {gaps['baseline'][key]:.3f})" if "baseline" in gaps
                         else ")"))
        if "l1" in gaps:
            metrics["l1_zero_weights"] = gaps["l1"]["zero_weights"]
        for n, es in stopper.items():
            ran = len(results[n].history.epochs)
            metrics[f"{n}_best_epoch"] = float(es.best_epoch)
            metrics[f"{n}_epochs"] = float(ran)
            print(f"{n}: best val_loss at epoch {es.best_epoch}, "
                  + (f"stopped at epoch {ran}" if es.stopped_epoch else f"ran all {ran} epochs")
                  + (f"; it went back to the weights of epoch {es.best_epoch}"
                     if es.best_epoch < ran else ""))
        return metrics


def generalization(result: variants.Result, data) -> dict[str, float]:
    """Train and test accuracy and loss in eval mode (no dropout noise), their gaps, and the
    share of weights that are exactly zero."""
    out = result.fit.trainer.predict(data.train.x).float().cpu()
    train_loss = float(nn.functional.cross_entropy(out, data.train.y))
    train_acc = float((out.argmax(-1) == data.train.y).float().mean())
    ws = weights(result.fit.model)
    zeros = sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)
    test = result.test
    return {"train_acc": train_acc, "test_acc": test["acc"],
            "acc_gap": train_acc - test["acc"], "train_loss": train_loss,
            "test_loss": test["loss"], "loss_gap": test["loss"] - train_loss,
            "zero_weights": zeros, "epochs": float(len(result.history.epochs))}


def train_val_curves(results: dict[str, variants.Result],
                     restored: dict[str, int] | None = None) -> Figure:
    """Training (dashed) and validation (solid) loss of each variant, one colour each; a star
    on the validation curve at the epoch whose weights a variant went back to (`restored`:
    early stopping's best epoch, by variant)."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, r) in enumerate(results.items()):
        epochs = [e["epoch"] for e in r.history.epochs]
        color = f"C{i % 10}"
        ax.plot(epochs, r.history.series("train_loss"), "--", color=color, alpha=0.6)
        ax.plot(epochs, r.history.series("val_loss"), color=color, label=name)
        best = (restored or {}).get(name, 0)
        if best and best in epochs:
            ax.plot([best], [r.history.series("val_loss")[epochs.index(best)]], "*",
                    color=color, ms=12, mec="k", label=f"{name}: weights of epoch {best} kept")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (dashed: train, solid: validation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("overfitting: validation loss turns up while training loss falls")
    return fig


def weight_histograms(models: dict[str, nn.Module]) -> Figure:
    """First-layer weight magnitudes per variant, with the share exactly zero (L1: sparse)."""
    fig = Figure(figsize=(4 * max(1, len(models)), 3.4), layout="constrained")
    for i, (name, model) in enumerate(models.items()):
        w = weights(model)[0].detach().cpu().abs().numpy().ravel()
        ax = fig.add_subplot(1, len(models), i + 1)
        ax.hist(np.log10(w[w > 0]), bins=40)
        ax.set_xlabel("log10 |w| (non-zero weights)")
        ax.set_title(f"{name}: {np.mean(w == 0):.0%} exactly zero")
    fig.suptitle("first-layer weights")
    return fig
