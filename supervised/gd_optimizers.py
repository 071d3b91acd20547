"""Gradient descent and its optimizers on a linear regression whose true weights are known.

One problem, y = 3 x1 - 2 x2 + 1 + noise with correlated inputs (an elongated loss surface),
fitted by a 2-weight linear model many ways: full-batch, mini-batch and stochastic gradient
descent; SGD, momentum, Nesterov, AdaGrad, RMSProp, Adadelta, Adam and Nadam; raw vs
standardized vs min-max scaled inputs; shuffled vs unshuffled batches; and learning rates up to
one that diverges (reported in the table and figures, not a crash). Because the model has two
weights, every optimizer's path can be drawn on the loss surface itself; a non-convex surface
with a saddle point and two minima shows where the optimizers' paths part.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labs import Lab, Split, TrainConfig, datasets, make_loader, option, probes, variants

TRUE_W = (3.0, -2.0)
TRUE_B = 1.0

# learning rates that suit each optimizer on this problem (adaptive ones take larger steps
# per unit of learning rate: AdaGrad's shrink, Adadelta's is a scale of its own, ~1)
OPTIMIZERS = {
    "sgd": (torch.optim.SGD, {}, 1.0),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}, 1.0),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}, 1.0),
    "adagrad": (torch.optim.Adagrad, {}, 10.0),
    "rmsprop": (torch.optim.RMSprop, {}, 0.2),
    "adadelta": (torch.optim.Adadelta, {}, 20.0),
    "adam": (torch.optim.Adam, {}, 1.0),
    "nadam": (torch.optim.NAdam, {}, 1.0),
}
SCALINGS = ("raw", "standardized", "minmax01", "minmax11")


@dataclass
class Config(TrainConfig):
    n_samples: int = option(500, "generated samples (80% train, 20% test)", min=20)
    noise: float = option(0.3, "standard deviation of the noise added to y", min=0)
    correlation: float = option(0.7, "correlation of the two inputs (stretches the surface)",
                                min=-0.99, max=0.99)
    optimizers: list[str] = option(list(OPTIMIZERS), "optimizers to compare",
                                   choices=tuple(OPTIMIZERS))
    epochs: int = option(20, "passes over the training data")
    lr: float = option(0.05, "learning rate of SGD; each optimizer's is lr x its factor "
                             "(adagrad 10, rmsprop 0.2, adadelta 20, others 1)")
    batch_size: int = option(16, "mini-batch size (full batch: all rows; stochastic: 1)")
    stochastic_epochs: int = option(5, "epochs of stochastic GD (batch size 1: slow per epoch)",
                                    min=1)
    diverge_lr: float = option(1.5, "a learning rate too large for SGD on standardized "
                                    "inputs (stable below ~2 / largest curvature)", gt=0)
    surface_steps: int = option(300, "steps on the non-convex surface", min=1)


def generate(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Inputs with unit variance and the given correlation, and y = TRUE_W . x + TRUE_B + noise."""
    rng = np.random.default_rng(cfg.seed)
    cov = np.array([[1.0, cfg.correlation], [cfg.correlation, 1.0]])
    x = rng.multivariate_normal([0.0, 0.0], cov, cfg.n_samples).astype(np.float32)
    y = x @ np.array(TRUE_W) + TRUE_B + rng.normal(0.0, cfg.noise, cfg.n_samples)
    return x, y.astype(np.float32)


def rescale(data, how: str, raw_scale=(100.0, 0.05), raw_shift=(500.0, -3.0)):
    """The same splits with inputs brought to another scale (statistics of the training split).

    "raw" multiplies and shifts the features to very different ranges, as measured data often
    comes (one in hundreds, one in hundredths).
    """
    sc, sh = torch.tensor(raw_scale), torch.tensor(raw_shift)
    raw = {k: getattr(data, k).x * sc + sh for k in ("train", "test")}
    lo, hi = raw["train"].min(0).values, raw["train"].max(0).values
    mean, std = raw["train"].mean(0), raw["train"].std(0)

    def f(x):
        if how == "raw":
            return x
        if how == "standardized":
            return (x - mean) / std
        unit = (x - lo) / (hi - lo)
        return unit if how == "minmax01" else 2 * unit - 1

    return dataclasses.replace(data, train=Split(f(raw["train"]), data.train.y),
                               test=Split(f(raw["test"]), data.test.y))


def regression() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 1), nn.Flatten(0))


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    cls, kwargs, factor = OPTIMIZERS[name]
    return cls(params, lr=lr * factor, **kwargs)


def weights(model: nn.Module) -> np.ndarray:
    """(w1, w2, b) of the trained regression."""
    lin = model[0]
    return np.concatenate([lin.weight.detach().cpu().numpy().ravel(),
                           lin.bias.detach().cpu().numpy()])


# -- a non-convex surface: a saddle point between a local and a global minimum ---------------

def bumpy(w: torch.Tensor) -> torch.Tensor:
    """f(a, b) = (a^2 - 1)^2 + 0.3 a + 0.5 b^2: minima near a = -1.04 (global, f = -0.31) and
    a = 0.96 (local, f = 0.29), a saddle point near (0.075, 0) between them."""
    a, b = w[..., 0], w[..., 1]
    return (a ** 2 - 1) ** 2 + 0.3 * a + 0.5 * b ** 2


def descend(name: str, start: tuple[float, float], steps: int, lr: float) -> np.ndarray:
    """The path of optimizer `name` on `bumpy` from `start`. A function of two numbers, not a
    model on data, so a plain optimizer loop (no batches, nothing for the trainer to do)."""
    w = torch.tensor(start, requires_grad=True)
    opt = make_optimizer(name, [w], lr)
    path = [w.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        bumpy(w).backward()
        opt.step()
        path.append(w.detach().clone())
    return torch.stack(path).numpy()


class GDOptimizers(Lab):
    """Linear regression with known weights by batch, mini-batch, stochastic GD and 8 optimizers.

    Linear regression with known weights by full-batch, mini-batch and stochastic GD and
    eight optimizers: loss curves, paths on the loss surface, scaling, shuffling, divergence.
    """

    lesson = "optimizers"
    tags = ("supervised", "basics", "optimizers")
    explains = "none"
    headline = "weight_error"
    Config = Config

    def data(self, cfg: Config):
        x, y = generate(cfg)
        return datasets.from_arrays(x, y, classification=False, scale=False, seed=cfg.seed,
                                    feature_names=["x1", "x2"])

    def model(self, cfg: Config, data) -> nn.Module:
        return regression()

    def evaluate(self, cfg: Config, models: dict, data) -> dict:
        """`lab eval`: each regression on the test inputs it was trained on; the scale/
        variants on their rescaled copies (rebuilt from the same training statistics), not
        on the standardized inputs of the others."""
        out = {}
        for name, model in models.items():
            group, _, variant = name.partition("/")
            mine = rescale(data, variant) if group == "scale" else data
            out.update({f"{name}/{k}": v
                        for k, v in super().evaluate(cfg, {name: model}, mine).items()})
        return out

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        common = {"loss": nn.MSELoss(), "metrics": (), "diverged": "report"}
        torch.manual_seed(cfg.seed)
        start = regression().state_dict()  # every variant starts from the same weights

        traces: dict[str, probes.ParamTrace] = {}  # (w1, w2) after every step, by optimizer

        def variant(opt="sgd", lr=cfg.lr, vdata=None, **fit):
            model = regression()
            model.load_state_dict(start)
            trace = traces[opt] = probes.ParamTrace(model[0].weight)
            fit = {"optimizer": make_optimizer(opt, model.parameters(), lr),
                   "callbacks": [trace], **fit}
            return variants.Variant(model, data=vdata, fit=fit)

        n_train = len(data.train.y)
        modes = variants.fit_all(run, {
            "full_batch": variant(batch_size=n_train),
            "mini_batch": variant(batch_size=cfg.batch_size),
            "stochastic": variant(batch_size=1, epochs=cfg.stochastic_epochs),
        }, data, prefix="batch/", **common)
        opts = variants.fit_all(run, {o: variant(o) for o in cfg.optimizers}, data,
                                prefix="opt/", **common)
        paths = {o: traces[o].points for o in cfg.optimizers}  # before a later fit reuses "sgd"
        scaled = variants.fit_all(run, {s: variant(vdata=rescale(data, s)) for s in SCALINGS},
                                  None, prefix="scale/", **common)
        ordered = _sorted_by_target(data)  # unshuffled, the batches come in order of y
        shuffle = variants.fit_all(run, {
            "shuffled": variant(vdata=ordered),
            "not_shuffled": variant(vdata=ordered, train=make_loader(
                ordered.train, cfg.batch_size, device=run.device, shuffle=False)),
        }, None, prefix="shuffle/", **common)
        rates = {f"lr={lr:g}": variant(lr=lr) for lr in (cfg.lr / 10, cfg.lr, cfg.diverge_lr)}
        lrs = variants.fit_all(run, rates, data, prefix="lr/", **common)

        groups = {"batch": modes, "opt": opts, "scale": scaled, "shuffle": shuffle, "lr": lrs}
        for group, results in groups.items():
            variants.log_table(run, group, results, ["train_loss", "test_loss", "seconds"])
            run.figure(f"{group}_loss", variants.curves(results, "train_loss", logy=True,
                                                        title=f"{group}: training loss"))
        run.figure("batch_loss_time", loss_vs_time(modes, "batch modes"))
        run.figure("opt_loss_time", loss_vs_time(opts, "optimizers"))
        run.figure("surface", surface(data, paths, {o: bool(r.diverged) for o, r in opts.items()}))
        bumpy_paths = {o: descend(o, (1.8, 1.2), cfg.surface_steps, 0.02) for o in cfg.optimizers}
        run.figure("nonconvex", nonconvex(bumpy_paths))
        run.table("nonconvex", ["optimizer", "a", "b", "f", "minimum"],
                  [[o, *map(float, p[-1]), float(bumpy(torch.tensor(p[-1]))), _which(p[-1])]
                   for o, p in bumpy_paths.items()])

        truth = np.array([*TRUE_W, TRUE_B])
        metrics: dict[str, float] = {}
        for group, results in groups.items():
            for name, r in results.items():
                key = f"{group}/{name}"
                if r.diverged:
                    metrics[f"{key}/diverged"] = 1.0
                    continue
                metrics[f"{key}/test_loss"] = r.test["loss"]
                if group != "scale":  # rescaled inputs have weights in other units
                    metrics[f"{key}/weight_error"] = float(
                        np.abs(weights(r.fit.model) - truth).max())
        metrics["weight_error"] = metrics["batch/mini_batch/weight_error"]  # max |w - true|
        metrics["diverged_variants"] = float(sum(k.endswith("/diverged") for k in metrics))
        return {"weight_error": metrics.pop("weight_error"), **metrics}


def _sorted_by_target(data):
    order = torch.argsort(data.train.y)
    return dataclasses.replace(data, train=Split(data.train.x[order], data.train.y[order]))


def _which(w: np.ndarray) -> str:
    if not np.all(np.isfinite(w)):
        return "diverged"
    if abs(w[1]) < 0.1 and abs(w[0] + 1.04) < 0.1:
        return "global"
    if abs(w[1]) < 0.1 and abs(w[0] - 0.96) < 0.1:
        return "local"
    return "not yet"


def loss_vs_time(results, title: str):
    """Training loss against cumulative wall time (each epoch's `epoch_time`)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for name, r in results.items():
        h = r.history
        t = np.cumsum(h.series("epoch_time"))
        loss = h.series("train_loss")
        label = f"{name} (diverged)" if r.diverged else name
        ax.plot(t[: len(loss)], loss, marker=".", label=label)
    ax.set(xlabel="wall time (s)", ylabel="train_loss", yscale="log", title=f"{title}: loss vs "
           "wall time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def surface(data, paths: dict[str, np.ndarray], diverged: dict[str, bool]):
    """Contours of the training MSE over (w1, w2) at the best bias, each optimizer's path."""
    from matplotlib.figure import Figure

    x, y = data.train.x.double(), data.train.y.double()
    a = torch.linspace(-1.5, 5.0, 120, dtype=torch.float64)
    b = torch.linspace(-4.0, 2.0, 120, dtype=torch.float64)
    gw1, gw2 = torch.meshgrid(a, b, indexing="xy")
    w = torch.stack([gw1.ravel(), gw2.ravel()], 1)
    pred = x @ w.T
    bias = (y[:, None] - pred).mean(0)  # the best bias for each (w1, w2)
    mse = ((pred + bias - y[:, None]) ** 2).mean(0).reshape(gw1.shape)
    fig = Figure(figsize=(7, 5.5), layout="constrained")
    ax = fig.add_subplot()
    ax.contour(gw1, gw2, mse.log10(), levels=25, cmap="viridis", linewidths=0.7)
    for name, pts in paths.items():
        if len(pts):
            ax.plot(pts[:, 0], pts[:, 1], lw=1, marker=".", ms=2,
                    label=f"{name}{' (diverged)' if diverged.get(name) else ''}")
    ax.plot(*TRUE_W, "k*", ms=12, label="true weights")
    ax.set(xlim=(a[0], a[-1]), ylim=(b[0], b[-1]), xlabel="w1", ylabel="w2",
           title="training MSE (log contours) and each optimizer's path")
    ax.legend(fontsize=7, loc="lower left")
    return fig


def nonconvex(paths: dict[str, np.ndarray]):
    """Each optimizer's path on `bumpy` from one start."""
    from matplotlib.figure import Figure

    a = torch.linspace(-1.8, 2.0, 200)
    b = torch.linspace(-1.5, 1.5, 150)
    ga, gb = torch.meshgrid(a, b, indexing="xy")
    f = bumpy(torch.stack([ga, gb], -1))
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    cs = ax.contourf(ga, gb, f, levels=np.linspace(-0.4, 4.0, 23), cmap="Greys", extend="max")
    fig.colorbar(cs, ax=ax, label="f(a, b)")
    for name, p in paths.items():
        ax.plot(p[:, 0], p[:, 1], lw=1.2, label=f"{name} -> {_which(p[-1])}")
    ax.plot([-1.04, 0.96], [0, 0], "r*", ms=10)
    ax.plot([0.075], [0], "bx", ms=9)
    ax.annotate("global min", (-1.04, 0), (-1.6, -1.2), fontsize=8)
    ax.annotate("local min", (0.96, 0), (1.2, -1.2), fontsize=8)
    ax.annotate("saddle", (0.075, 0), (-0.1, 0.3), fontsize=8)
    ax.set(xlim=(a[0], a[-1]), ylim=(b[0], b[-1]), xlabel="a", ylabel="b",
           title="f(a,b) = (a²-1)² + 0.3a + 0.5b²: where each optimizer ends")
    ax.legend(fontsize=7, loc="upper left")
    return fig
