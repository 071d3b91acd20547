"""Pseudo-labelling: learn from a few labels, label the unlabelled images the model is sure
about, and train again on both.

On scikit-learn's 8x8 digits with 1, 5 or 10 labelled images per class (the rest of the
training images unlabelled), over several draws of the labels: the test accuracy of the model
trained on the labels alone against the one retrained with its own confident pseudo-labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from labs import ConfigError, Dataset, Lab, Split, TrainConfig, option, variants
from supervised.digits_cnn import cnn
from supervised.transfer import DIGITS_MIN_PER_CLASS, digit_task, few_labels


@dataclass
class Config(TrainConfig):
    labels: list[int] = option([1, 5, 10], "labelled training images per class", min=1)
    seeds: int = option(3, "draws of the labelled images (and inits) per label count", min=1)
    threshold: float = option(0.95, "keep a pseudo-label when the model's probability of it is "
                                    "at least this", gt=0, lt=1)
    balance: bool = option(True, "keep at most as many pseudo-labels per class as the median "
                                 "class gets (confident guesses pile up on the easy classes, "
                                 "and a retrained model then over-predicts them)")
    rounds: int = option(2, "pseudo-label / retrain rounds (each labels again with the latest "
                            "model)", min=1, max=5)
    retrain_epochs: int = option(10, "epochs of each retraining on labels + pseudo-labels (a "
                                     "set many times larger: as many steps as 'epochs' on "
                                     "a few hundred images)", min=1)
    channels: list[int] = option([16, 32], "filters of each 3x3 convolution", min=1)
    dense: int = option(128, "units of the dense layer", min=1)
    test_size: float = option(0.3, "held-out test fraction (stratified)", gt=0, lt=1)
    epochs: int = option(40, "epochs of the labelled-only training")
    lr: float = option(3e-3, "learning rate")
    batch_size: int = option(32, "samples per gradient step")

    def validate(self) -> None:
        super().validate()
        pool = int(DIGITS_MIN_PER_CLASS * (1 - self.test_size)) - 1
        if max(self.labels) >= pool:
            raise ConfigError(f"labels={max(self.labels)} per class leaves no unlabelled "
                              f"images (test_size={self.test_size} leaves {pool} per class)")


def pseudo_labelled(data: Dataset, threshold: float, predict, balance: bool = False
                    ) -> tuple[Dataset, dict[str, float]]:
    """`data` with the unlabelled images whose predicted class has probability >= `threshold`
    added to the training split under that class; and how many were added, how many right.
    `balance`: per class, only the most confident ones, up to the median class's count."""
    pool = data.extras["unlabelled"]
    prob = torch.softmax(predict(pool.x).float().cpu(), -1)
    conf, guess = prob.max(-1)
    keep = conf >= threshold
    if balance and keep.any():
        per_class = torch.bincount(guess[keep], minlength=data.n_classes)
        cap = int(per_class.float().median())
        capped = torch.zeros_like(keep)
        for c in range(data.n_classes):
            idx = torch.nonzero(keep & (guess == c)).flatten()
            top = idx[torch.argsort(conf[idx], descending=True)[:cap]]
            capped[top] = True
        keep = capped
    train = Split(torch.cat([data.train.x, pool.x[keep]]),
                  torch.cat([data.train.y, guess[keep]]))
    stats = {"pseudo_count": float(keep.sum()),
             "pseudo_precision": float((guess[keep] == pool.y[keep]).float().mean())
             if keep.any() else float("nan")}
    return Dataset(train=train, test=data.test, n_classes=data.n_classes,
                   class_names=data.class_names, image_shape=data.image_shape,
                   display=data.display, brightness=data.brightness,
                   feature_names=data.feature_names, extras=data.extras), stats


class PseudoLabeling(Lab):
    """Pseudo-labelling: a few labels plus the model's confident guesses vs the labels alone."""

    lesson = "transfer"
    tags = ("supervised", "cnn", "semi-supervised", "images")
    explains = "image"
    headline = "pseudo_gain"
    Config = Config

    def data(self, cfg: Config) -> Dataset:
        return digit_task(list(range(10)), cfg.test_size, cfg.seed)

    def model(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        return {name: cnn(cfg.channels, cfg.dense, data.n_classes)
                for name in ("labelled", "pseudo")}

    def run(self, cfg: Config, run) -> dict:
        full = self.data(cfg)
        acc: dict[str, dict[int, list[float]]] = {"labelled": {}, "pseudo": {}}
        stats: dict[int, list[dict[str, float]]] = {}
        keep: dict[str, nn.Module] = {}
        loss = nn.CrossEntropyLoss()
        for n in cfg.labels:
            for seed in range(cfg.seeds):
                data = few_labels(full, n, seed=cfg.seed * 1000 + seed)
                prefix = f"n{n}/s{seed}/"
                nets = self.model(cfg, data)
                # every student starts from the teacher's initial weights: the pair differs
                # only in its training data, so the comparison is not blurred by the init
                init = {k: v.clone() for k, v in nets["labelled"].state_dict().items()}
                base = variants.fit_all(run, {"labelled": nets["labelled"]}, data,
                                        prefix=prefix, loss=loss)["labelled"]
                teacher = base.fit.trainer
                for r in range(cfg.rounds):
                    mixed, st = pseudo_labelled(data, cfg.threshold, teacher.predict,
                                                cfg.balance)
                    student = self.model(cfg, data)["pseudo"]
                    student.load_state_dict(init)
                    name = "pseudo" if r == cfg.rounds - 1 else f"pseudo-round{r + 1}"
                    res = variants.fit_all(run, {name: student}, mixed, prefix=prefix,
                                           loss=loss, epochs=retrain_epochs(cfg, data, mixed)
                                           )[name]
                    teacher = res.fit.trainer
                acc["labelled"].setdefault(n, []).append(base.test["acc"])
                acc["pseudo"].setdefault(n, []).append(res.test["acc"])
                stats.setdefault(n, []).append(st)
                if n == cfg.labels[-1] and seed == 0:
                    keep = {"labelled": nets["labelled"], "pseudo": student}
        run.figure("accuracy_vs_labels", figure(acc, stats, cfg))
        run.models.clear()  # keep one labelled-only and one pseudo-labelled model by name
        for name, net in keep.items():
            run.save_model(net, name)
        run.data = full
        out: dict[str, float] = {}
        for name, by_n in acc.items():
            for n, values in by_n.items():
                out[f"{name}_acc_n{n}"] = float(np.mean(values))
                out[f"{name}_acc_n{n}_std"] = float(np.std(values))
        for n, rows in stats.items():
            for key in ("pseudo_count", "pseudo_precision"):
                out[f"{key}_n{n}"] = finite_mean([r[key] for r in rows])
        gains = [out[f"pseudo_acc_n{n}"] - out[f"labelled_acc_n{n}"] for n in cfg.labels]
        out["pseudo_gain"] = float(max(gains))
        return out


def retrain_epochs(cfg: Config, data: Dataset, mixed: Dataset) -> int:
    """`retrain_epochs`, or more when the retraining would otherwise take fewer gradient
    steps than the labelled-only training (few or no pseudo-labels were added)."""
    steps = cfg.epochs * math.ceil(len(data.train) / cfg.batch_size)
    return max(cfg.retrain_epochs, math.ceil(steps / math.ceil(len(mixed.train) /
                                                                cfg.batch_size)))


def finite_mean(values: list[float]) -> float:
    """The mean of the finite values (a draw with no pseudo-label has no precision)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def figure(acc: dict, stats: dict, cfg: Config) -> Figure:
    """Test accuracy against labels per class, labelled-only vs pseudo-labelled (mean ± std),
    with the number and precision of the pseudo-labels written under each point."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for name, by_n in acc.items():
        ns = sorted(by_n)
        ax.errorbar(ns, [np.mean(by_n[n]) for n in ns], yerr=[np.std(by_n[n]) for n in ns],
                    marker="o", capsize=3,
                    label="labels only" if name == "labelled" else
                    f"+ pseudo-labels (p >= {cfg.threshold})")
    for n, rows in stats.items():
        count = np.mean([r["pseudo_count"] for r in rows])
        prec = finite_mean([r["pseudo_precision"] for r in rows])
        ax.annotate(f"{count:.0f} pseudo\n{prec:.0%} right", (n, np.mean(acc["pseudo"][n])),
                    textcoords="offset points", xytext=(0, -28), ha="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xticks(cfg.labels, [str(n) for n in cfg.labels])
    ax.set_xlabel("labelled images per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"pseudo-labelling on the digits: mean ± std over {cfg.seeds} seeds",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
