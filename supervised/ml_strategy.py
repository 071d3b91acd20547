"""Machine-learning strategy on scikit-learn's 8x8 digits: what to try next, read from numbers.

1. Learning curves against training-set size for a small, a medium and a large network and an
   SVM (the course's "why deep learning is taking off" figure).
2. A bias/variance table: training error, dev error and a human-level proxy, with the
   diagnosis (avoidable bias or variance) and the remedy it suggests.
3. A train-dev split that exposes a train/dev distribution mismatch (dev digits are shifted and
   noisy, unlike the training digits).
4. Logistic regression written with explicit Python loops and vectorized (w = b = 0,
   dz = a - y, dw = X dz^T / m): the same weights, and how much faster numpy is.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from labs import Dataset, Lab, Split, TrainConfig, datasets, images, models, option, variants

NETS = ("small", "medium", "large")


@dataclass
class Config(TrainConfig):
    sizes: list[int] = option([50, 100, 200, 400, 800, 1250], "training-set sizes of the "
                                                              "learning curves", min=10)
    small: list[int] = option([4], "hidden widths of the small network (too small for ten "
                                   "digits: the high-bias row of the table)", min=1)
    medium: list[int] = option([64], "hidden widths of the medium network", min=1)
    large: list[int] = option([512, 512], "hidden widths of the large network", min=1)
    activation: str = option("tanh", "hidden activation of the networks (tanh: no dead units "
                                     "in a 4-unit layer)", choices=tuple(models.ACTIVATIONS))
    steps: int = option(600, "gradient steps per network and size (epochs follow from it)",
                        min=1)
    svm_gamma: float = option(0.001, "RBF width of the SVM (on raw 0..16 pixels)", gt=0)
    mismatch_shift: int = option(1, "dev-distribution digits are moved by up to this many "
                                     "pixels ...", min=0, max=3)
    mismatch_noise: float = option(0.1, "... and get this much Gaussian pixel noise (pixels in "
                                        "[0, 1])", min=0)
    logreg_iters: int = option(20, "gradient-descent iterations of both logistic regressions",
                               min=1)
    logreg_lr: float = option(0.5, "their learning rate", gt=0)
    lr: float = option(3e-3, "learning rate of the networks")
    batch_size: int = option(32, "samples per gradient step")

    def validate(self) -> None:
        super().validate()
        from labs import ConfigError

        if max(self.sizes) > 1257:  # 1,797 digits minus 20 % test and 10 % dev
            raise ConfigError(f"sizes go up to 1257 training digits, not {max(self.sizes)}")


# -- 4. logistic regression, loops vs vectorized ----------------------------------------------

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def logreg_loops(X: np.ndarray, Y: np.ndarray, iters: int, lr: float
                 ) -> tuple[np.ndarray, float]:
    """Logistic regression by gradient descent, one Python loop per sample and per feature.
    X: (n_x, m) inputs in columns, Y: (1, m). Returns (w of shape (n_x, 1), b)."""
    n_x, m = X.shape
    w, b = [0.0] * n_x, 0.0
    for _ in range(iters):
        dw, db = [0.0] * n_x, 0.0
        for i in range(m):
            z = b
            for j in range(n_x):
                z += w[j] * X[j, i]
            a = 1.0 / (1.0 + math.exp(-z))
            dz = a - Y[0, i]
            for j in range(n_x):
                dw[j] += X[j, i] * dz
            db += dz
        for j in range(n_x):
            w[j] -= lr * dw[j] / m
        b -= lr * db / m
    return np.array(w).reshape(n_x, 1), b


def logreg_vectorized(X: np.ndarray, Y: np.ndarray, iters: int, lr: float
                      ) -> tuple[np.ndarray, float]:
    """The same, vectorized: Z = w^T X + b, A = sigmoid(Z), dZ = A - Y, dw = X dZ^T / m,
    db = sum(dZ) / m."""
    n_x, m = X.shape
    w, b = np.zeros((n_x, 1)), 0.0
    for _ in range(iters):
        A = sigmoid(w.T @ X + b)
        dZ = A - Y
        w -= lr * (X @ dZ.T) / m
        b -= lr * float(dZ.sum()) / m
    return w, b


# -- 2. and 3. diagnosis ----------------------------------------------------------------------

def diagnose(human: float, train: float, dev: float) -> tuple[str, str]:
    """(diagnosis, remedy) from the human-level proxy, training and dev errors."""
    bias, variance = train - human, dev - train
    if max(bias, variance) < 0.01:
        return "near the human-level proxy", "more data or a better proxy: little to gain here"
    if bias >= variance:
        return (f"avoidable bias ({bias:.1%}) > variance ({variance:.1%})",
                "bigger network, train longer, better architecture")
    return (f"variance ({variance:.1%}) > avoidable bias ({bias:.1%})",
            "more data, regularization (L2, dropout), data augmentation")


def mismatch_diagnosis(train: float, train_dev: float, dev: float) -> tuple[str, str]:
    variance, mismatch = train_dev - train, dev - train_dev
    if mismatch > variance:
        return (f"data mismatch ({mismatch:.1%}) > variance ({variance:.1%})",
                "make training data like the dev data (collect it, or synthesize it: here "
                "shifts and noise as augmentation)")
    return (f"variance ({variance:.1%}) >= data mismatch ({mismatch:.1%})",
            "more data, regularization")


def shifted(x: torch.Tensor, max_shift: int, noise: float, seed: int) -> torch.Tensor:
    """Digits from another distribution: moved by up to `max_shift` pixels, with noise."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty_like(x)
    for i in range(len(x)):
        dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=g).tolist()
        out[i] = images.shift(x[i:i + 1], dy, dx, (8, 8))[0]
    return (out + noise * torch.randn(out.shape, generator=g)).clamp(0, 1)


class MLStrategy(Lab):
    """ML strategy: learning curves, bias/variance, train/dev mismatch, vectorization."""

    lesson = "strategy"
    tags = ("supervised", "mlp", "strategy")
    explains = "none"
    headline = "large_dev_acc"
    Config = Config

    def data(self, cfg: Config) -> Dataset:
        # pixels in [0, 1]: the shifted, noisy dev distribution of part 3 stays on one scale
        return datasets.digits(test_size=0.2, val_size=0.1, scale="unit", seed=cfg.seed)

    def model(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        return {name: models.mlp(data.n_features, getattr(cfg, name), data.n_classes,
                                 cfg.activation) for name in NETS}

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        out: dict[str, float] = {}
        curves, final = self.learning_curves(cfg, run, data)
        run.figure("learning_curves", curves_figure(curves, cfg))
        for name, by_size in curves.items():
            out[f"{name}_dev_acc"] = 1 - by_size[max(cfg.sizes)]["dev"]
        out.update(self.bias_variance(cfg, run, curves))
        out.update(self.mismatch(cfg, run, data))
        out.update(self.vectorization(cfg, run, data))
        run.models.clear()  # keep the three networks trained on the most data, by name
        for name, net in final.items():
            run.save_model(net, name)
        run.data = data
        return out

    # 1.
    def learning_curves(self, cfg: Config, run, data: Dataset):
        """{net: {size: {"train": error, "dev": error}}} and the nets of the largest size."""
        from sklearn.svm import SVC

        curves: dict[str, dict[int, dict[str, float]]] = {n: {} for n in (*NETS, "svm")}
        final: dict[str, nn.Module] = {}
        order = torch.from_numpy(np.random.default_rng(cfg.seed).permutation(len(data.train)))
        for size in sorted(cfg.sizes):
            idx = order[:size]
            sub = Dataset(train=Split(data.train.x[idx], data.train.y[idx]), val=data.val,
                          test=data.test, n_classes=data.n_classes, image_shape=(8, 8))
            epochs = max(1, math.ceil(cfg.steps * cfg.batch_size / size))
            nets = self.model(cfg, sub)
            results = variants.fit_all(run, nets, sub, prefix=f"m{size}/",
                                       loss=nn.CrossEntropyLoss(), epochs=epochs)
            for name, r in results.items():
                trainer = r.fit.trainer
                curves[name][size] = {"train": error(trainer.predict, sub.train),
                                      "dev": error(trainer.predict, data.val)}
            svm = SVC(gamma=cfg.svm_gamma).fit(16 * sub.train.x.numpy(), sub.train.y.numpy())
            curves["svm"][size] = {
                "train": 1 - svm.score(16 * sub.train.x.numpy(), sub.train.y.numpy()),
                "dev": 1 - svm.score(16 * data.val.x.numpy(), data.val.y.numpy())}
            final = nets
        run.table("learning_curves", ["model", "train_size", "train_error", "dev_error"],
                  [[n, s, e["train"], e["dev"]] for n, by in curves.items()
                   for s, e in by.items()])
        return curves, final

    # 2.
    def bias_variance(self, cfg: Config, run, curves) -> dict[str, float]:
        """Each network at the smallest and the largest size, against a human-level proxy:
        the best dev error any model reached on the most data (the SVM's, typically)."""
        top = max(cfg.sizes)
        human = min(by[top]["dev"] for by in curves.values())
        rows = []
        for name in NETS:
            for size in (min(cfg.sizes), top):
                e = curves[name][size]
                what, remedy = diagnose(human, e["train"], e["dev"])
                rows.append([f"{name} net, {size} digits", human, e["train"], e["dev"],
                             e["train"] - human, e["dev"] - e["train"], what, remedy])
        cols = ["model", "human_proxy_error", "train_error", "dev_error", "avoidable_bias",
                "variance", "diagnosis", "remedy"]
        run.table("bias_variance", cols, rows)
        (run.dir / "bias_variance.txt").write_text(text_table(cols, rows))
        return {"human_proxy_error": human}

    # 3.
    def mismatch(self, cfg: Config, run, data: Dataset) -> dict[str, float]:
        """Train on clean digits; train-dev: held-out clean digits; dev: digits from the other
        (shifted, noisy) distribution. The gaps say variance or data mismatch."""
        n = len(data.train)
        cut = int(0.85 * n)
        train = Split(data.train.x[:cut], data.train.y[:cut])
        train_dev = Split(data.train.x[cut:], data.train.y[cut:])
        dev = Split(shifted(data.val.x, cfg.mismatch_shift, cfg.mismatch_noise, cfg.seed),
                    data.val.y)
        sub = Dataset(train=train, val=train_dev, test=dev, n_classes=data.n_classes,
                      image_shape=(8, 8))
        net = models.mlp(data.n_features, cfg.medium, data.n_classes, cfg.activation)
        epochs = max(1, math.ceil(cfg.steps * cfg.batch_size / cut))
        fit = run.fit(net, sub, loss=nn.CrossEntropyLoss(), name="mismatch", epochs=epochs)
        errs = {k: error(fit.trainer.predict, s) for k, s in
                (("train", train), ("train_dev", train_dev), ("dev", dev))}
        what, remedy = mismatch_diagnosis(errs["train"], errs["train_dev"], errs["dev"])
        cols = ["train_error", "train_dev_error", "dev_error", "diagnosis", "remedy"]
        rows = [[errs["train"], errs["train_dev"], errs["dev"], what, remedy]]
        run.table("mismatch", cols, rows)
        (run.dir / "mismatch.txt").write_text(text_table(cols, rows))
        return {f"mismatch_{k}_error": v for k, v in errs.items()}

    # 4.
    def vectorization(self, cfg: Config, run, data: Dataset) -> dict[str, float]:
        """Digit 0 against digit 1, both logistic regressions from w = b = 0."""
        keep = (data.train.y == 0) | (data.train.y == 1)
        X = data.train.x[keep].numpy().astype(np.float64).T  # (64, m): samples in columns
        Y = data.train.y[keep].numpy().astype(np.float64).reshape(1, -1)
        start = time.perf_counter()
        w_loop, b_loop = logreg_loops(X, Y, cfg.logreg_iters, cfg.logreg_lr)
        loops = time.perf_counter() - start
        start = time.perf_counter()
        w_vec, b_vec = logreg_vectorized(X, Y, cfg.logreg_iters, cfg.logreg_lr)
        vec = time.perf_counter() - start
        diff = max(float(np.abs(w_loop - w_vec).max()), abs(b_loop - b_vec))
        acc = float(((sigmoid(w_vec.T @ X + b_vec) > 0.5) == Y).mean())
        run.table("vectorization", ["version", "seconds", "max_abs_diff", "train_acc"],
                  [["loops", loops, diff, acc], ["vectorized", vec, diff, acc]])
        return {"logreg_loop_seconds": loops, "logreg_vectorized_seconds": vec,
                "logreg_speedup": loops / max(vec, 1e-9), "logreg_max_abs_diff": diff,
                "logreg_train_acc": acc}


def error(predict, split: Split) -> float:
    """Classification error of `predict` on `split` (eval mode: no dropout)."""
    pred = predict(split.x).argmax(-1).cpu()
    return float((pred != split.y.cpu()).float().mean())


def text_table(cols: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[cell(v) for v in row] for row in [cols, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells) + "\n"


def curves_figure(curves: dict, cfg: Config) -> Figure:
    """Dev accuracy against training-set size: small, medium, large network and the SVM."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for name, by in curves.items():
        sizes = sorted(by)
        label = f"{name} net {getattr(cfg, name)}" if name in NETS else "SVM (RBF)"
        ax.plot(sizes, [1 - by[s]["dev"] for s in sizes], marker="o", label=label,
                linestyle="--" if name == "svm" else "-")
    ax.set_xscale("log")
    ax.set_xlabel("training digits")
    ax.set_ylabel("dev accuracy")
    ax.set_title("learning curves: dev accuracy against training-set size", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
