"""Transfer learning with few labels: a pretrained backbone against training from scratch.

The offline default needs no download: a small CNN is pretrained here on a source task
(digits 0-4), saved as the run's `checkpoints/backbone.pt`, and transferred to a target task
(digits 5-9) with 1, 5, 10 or 50 labelled images per class. `--set backbone=resnet18` (or
mobilenet_v3_small, vgg11, vgg16) uses a torchvision network with its ImageNet weights instead.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from labs import (
    ConfigError,
    Dataset,
    Lab,
    Split,
    TrainConfig,
    augmented_step,
    backbones,
    checkpoint,
    default_subject,
    option,
    supervised_step,
    variants,
)

STRATEGIES = ("scratch", "features", "finetune")
ARTIFACT = "checkpoints/backbone.pt"  # the pretrained backbone a later run may reuse
DIGITS_MIN_PER_CLASS = 174  # the rarest class of scikit-learn's digits has 174 images


@dataclass
class Config(TrainConfig):
    backbone: str = option("small", "the pretrained network: 'small' (a CNN pretrained here on "
                                    "the source digits: offline) or a torchvision architecture",
                           choices=("small", *backbones.ARCHITECTURES))
    weights: str | None = option(None, "torchvision backbones: a .pth state dict of the whole "
                                       "model (none: torch's hub cache, else a download); "
                                       "'random': an untrained backbone, asked for")
    source_run: str | None = option(None, "small backbone: reuse the pretrained backbone of "
                                          "this earlier transfer-cnn run (id or path)")
    source_digits: list[int] = option([0, 1, 2, 3, 4], "small backbone: the source task's "
                                                       "digits", min=0, max=9)
    target_digits: list[int] = option([], "the target task's digits (empty: those not in the "
                                          "source task; all ten for a torchvision backbone)",
                                      min=0, max=9)
    labels: list[int] = option([1, 5, 10, 50], "labelled training images per class", min=1)
    seeds: int = option(3, "label draws (and inits) per label count", min=1)
    strategies: list[str] = option(list(STRATEGIES), "what to compare", choices=STRATEGIES)
    head: int = option(512, "units of the new head's hidden Dense layer (0: a single Dense)",
                       min=0)
    warmup_epochs: int = option(5, "fine-tuning: head-only epochs before unfreezing", min=1)
    unfreeze: int = option(1, "fine-tuning: the backbone's last blocks unfrozen after the "
                              "warm-up", min=1)
    body_lr_scale: float = option(0.1, "fine-tuning: the unfrozen blocks' learning rate as a "
                                       "fraction of lr", gt=0, max=1)
    source_epochs: int = option(20, "small backbone: pretraining epochs on the source task",
                                min=1)
    image_size: int = option(0, "torchvision backbones: input side (0: the weights' crop size, "
                                "224; smaller is faster on a CPU)", min=0)
    augment: str = option("none", "training augmentation (torchvision transforms)",
                          choices=backbones.AUGMENTATIONS)
    test_size: float = option(0.3, "held-out test fraction of the target digits", gt=0, lt=1)
    epochs: int = option(30, "epochs per strategy (fine-tuning: warm-up included)")
    lr: float = option(3e-3, "learning rate (of the head; scratch: of everything)")
    batch_size: int = option(32, "samples per gradient step")

    @property
    def targets(self) -> list[int]:
        if self.target_digits:
            return sorted(self.target_digits)
        if self.backbone != "small":
            return list(range(10))
        return [d for d in range(10) if d not in self.source_digits]

    def validate(self) -> None:
        super().validate()
        if "finetune" in self.strategies and self.warmup_epochs >= self.epochs:
            raise ConfigError(f"warmup_epochs ({self.warmup_epochs}) must be < epochs "
                              f"({self.epochs}): fine-tuning needs epochs after the warm-up")
        if len(self.targets) < 2:
            raise ConfigError(f"the target task needs two digits or more, not {self.targets}")
        pool = int(DIGITS_MIN_PER_CLASS * (1 - self.test_size)) - 1
        if max(self.labels) > pool:
            raise ConfigError(f"labels={max(self.labels)} per class is more than the "
                              f"{pool} training images per class test_size={self.test_size} "
                              f"leaves")
        if self.backbone == "small":
            if self.weights:
                raise ConfigError("weights= is for torchvision backbones; the small backbone "
                                  "is pretrained here (or reused with source_run=)")
        elif self.source_run:
            raise ConfigError(f"source_run= reuses a small backbone; {self.backbone} "
                              f"comes with its own pretrained weights")

    def preflight(self) -> None:
        """The pretrained weights (or the source run) are there: training needs them; a
        reloaded run's saved model does not."""
        super().preflight()
        if self.backbone == "small":
            if self.source_run:
                backbones.run_artifact(self.source_run, "transfer-cnn", ARTIFACT,
                                       "pretrained backbone")
        else:
            backbones.locate(self.backbone, self.weights)


def digit_task(digits: list[int], test_size: float, seed: int) -> Dataset:
    """The digits `digits` (pixels / 16, flat 8x8), classes renumbered 0..k-1 in that order."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    keep = np.isin(d.target, digits)
    x = (d.data[keep] / 16.0).astype(np.float32)
    y = np.searchsorted(np.array(digits), d.target[keep])
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, stratify=y,
                                          random_state=seed)
    return Dataset(train=Split(torch.from_numpy(xtr), torch.from_numpy(ytr)),
                   test=Split(torch.from_numpy(xte), torch.from_numpy(yte)),
                   n_classes=len(digits), class_names=[str(c) for c in digits],
                   image_shape=(8, 8), display=lambda img: img, brightness=float(x.mean()),
                   feature_names=[f"px{r}{c}" for r in range(8) for c in range(8)])


def few_labels(data: Dataset, per_class: int, seed: int) -> Dataset:
    """`data` with only `per_class` labelled training images of each class (drawn by `seed`);
    `extras["unlabelled"]` holds the other training inputs (and their hidden labels)."""
    y = data.train.y.numpy()
    rng = np.random.default_rng(seed)
    picked = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                             for c in range(data.n_classes)])
    rest = np.setdiff1d(np.arange(len(y)), picked)
    idx, other = torch.from_numpy(np.sort(picked)), torch.from_numpy(rest)
    return Dataset(train=Split(data.train.x[idx], data.train.y[idx]), test=data.test,
                   n_classes=data.n_classes, class_names=data.class_names,
                   image_shape=data.image_shape, display=data.display,
                   brightness=data.brightness, feature_names=data.feature_names,
                   extras={"unlabelled": Split(data.train.x[other], data.train.y[other])})


def small_body() -> tuple[nn.Sequential, int]:
    """The small backbone: three 3x3 conv blocks with BatchNorm (a 2x2 max-pool after the
    second), then an adaptive 2x2 average pool: 64 x 2 x 2 = 256 features."""
    def block(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))

    return nn.Sequential(OrderedDict(block1=block(1, 32), block2=block(32, 64, pool=True),
                                     block3=block(64, 64), pool=nn.AdaptiveAvgPool2d(2))), 256


def network(cfg: Config, n_classes: int, state: dict | None = None) -> backbones.TransferNet:
    """The backbone (with `state` loaded: the small body's, or the whole torchvision model's;
    None: random init) under a new head."""
    if cfg.backbone == "small":
        body, width = small_body()
        if state is not None:
            body.load_state_dict(state)
        pipe: nn.Module = nn.Unflatten(1, (1, 8, 8))
    else:
        body, width = backbones.body(cfg.backbone, state)
        pipe = backbones.pipeline(cfg.backbone, (8, 8), cfg.image_size)
    return backbones.TransferNet(pipe, body, width, cfg.head, n_classes)


def prepared(net: backbones.TransferNet, strategy: str, unfreeze: int = 0
             ) -> backbones.TransferNet:
    """`net` frozen as `strategy` trains it: scratch all trainable; features a frozen body;
    finetune a frozen body with its last `unfreeze` blocks trainable (0: the warm-up)."""
    if strategy != "scratch":
        backbones.freeze(net.body)
        backbones.unfreeze_last(net, unfreeze)
    return net


class TransferCNN(Lab):
    """Transfer learning with few labels: scratch vs frozen features vs fine-tuning."""

    lesson = "transfer"
    tags = ("supervised", "cnn", "transfer", "images")
    explains = "image"
    headline = "transfer_gain"
    Config = Config

    def data(self, cfg: Config) -> Dataset:
        return digit_task(cfg.targets, cfg.test_size, cfg.seed)

    def model(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        """The strategies' networks as trained (untrained weights), by strategy."""
        return {s: prepared(network(cfg, data.n_classes), s,
                            cfg.unfreeze if s == "finetune" else 0) for s in cfg.strategies}

    def pretrained(self, cfg: Config, run) -> tuple[dict | None, dict]:
        """The pretrained backbone's state and what to record about where it came from."""
        if cfg.backbone != "small":
            state = backbones.pretrained_state(cfg.backbone, cfg.weights)
            return state, {"source": cfg.weights or "torchvision DEFAULT weights"}
        if cfg.source_run:
            path = backbones.run_artifact(cfg.source_run, "transfer-cnn", ARTIFACT,
                                          "pretrained backbone")
            saved = checkpoint.load(path, require=("model",))
            state, info = saved["model"], {"source": str(path)}
            info["source_acc"] = float(saved.get("source_acc", float("nan")))
        else:
            source = digit_task(cfg.source_digits, 0.2, cfg.seed)
            net = network(cfg, source.n_classes)
            fit = run.fit(net, source, name="source", epochs=cfg.source_epochs,
                          loss=nn.CrossEntropyLoss(), step=self.step(cfg))
            state = net.body.state_dict()
            info = {"source": f"pretrained here on digits {cfg.source_digits}",
                    "source_acc": fit.test["acc"]}
        checkpoint.save({"model": state, "backbone": "small", "source_digits":
                         list(cfg.source_digits), "source_acc": info["source_acc"]},
                        run.dir / ARTIFACT)
        return state, info

    def step(self, cfg: Config):
        if cfg.augment == "none":
            return supervised_step
        return augmented_step(backbones.augmentation(cfg.augment, (8, 8)))

    def run(self, cfg: Config, run) -> dict:
        target = self.data(cfg)
        state, source = self.pretrained(cfg, run)
        acc: dict[str, dict[int, list[float]]] = {s: {n: [] for n in cfg.labels}
                                                   for s in cfg.strategies}
        keep: dict[str, nn.Module] = {}
        for n in cfg.labels:
            for seed in range(cfg.seeds):
                data = few_labels(target, n, seed=cfg.seed * 1000 + seed)
                results, nets = self.compare(cfg, run, data, state, prefix=f"n{n}/s{seed}/")
                for s in cfg.strategies:
                    acc[s][n].append(results[s].test["acc"])
                if seed == 0 and n == cfg.labels[-1]:
                    keep = nets
        record = self.record(cfg, keep)
        (run.dir / "strategies.json").write_text(json.dumps({**record, **source}, indent=2))
        run.record({"strategies": {s: {"frozen_layers": r["frozen_layers"],
                                       "lr_groups": r["lr_groups"]}
                                   for s, r in record["strategies"].items()}})
        run.table("strategies", ["strategy", "frozen_layers", "trainable", "frozen",
                                 "lr_groups"],
                  [[s, ", ".join(r["frozen_layers"]) or "-", r["trainable"], r["frozen"],
                    json.dumps(r["lr_groups"])] for s, r in record["strategies"].items()])
        run.figure("accuracy_vs_labels", accuracy_figure(acc, cfg))
        # the run keeps (and `lab explain` reloads) one network per strategy, the one trained
        # on the most labels with the first draw, under the strategy's name
        run.models.clear()
        for s, net in keep.items():
            run.save_model(net, s)
        run.data = target
        if cfg.explain:
            run.figure("gradcam_vs_lime", gradcam_vs_lime(keep, target, cfg))
        return metrics(acc, cfg, source, record)

    def compare(self, cfg: Config, run, data: Dataset, state: dict | None, prefix: str):
        """Train every strategy on `data` with the same epoch budget; (results, networks)."""
        k, lr, nets = data.n_classes, cfg.lr, {}
        specs: dict = {}
        if "scratch" in cfg.strategies:
            nets["scratch"] = network(cfg, k)
            specs["scratch"] = nets["scratch"]
        if "features" in cfg.strategies:
            net = nets["features"] = prepared(network(cfg, k, state), "features")
            specs["features"] = variants.Variant(net, fit={"optimizer": torch.optim.Adam(
                backbones.param_groups(net, lr, cfg.body_lr_scale))})
        if "finetune" in cfg.strategies:
            net = nets["finetune"] = prepared(network(cfg, k, state), "finetune")
            specs["finetune-warmup"] = variants.Variant(net, fit={
                "epochs": cfg.warmup_epochs,
                "optimizer": torch.optim.Adam(backbones.param_groups(net, lr, 1.0))})

            def unfrozen(net=net):  # built when its turn comes: after the warm-up
                backbones.unfreeze_last(net, cfg.unfreeze)
                return variants.Variant(net, fit={
                    "epochs": cfg.epochs - cfg.warmup_epochs,
                    "optimizer": torch.optim.Adam(backbones.param_groups(net, lr,
                                                                         cfg.body_lr_scale))})

            specs["finetune"] = unfrozen
        results = variants.fit_all(run, specs, data, prefix=prefix, loss=nn.CrossEntropyLoss(),
                                   step=self.step(cfg), callbacks=[backbones.FrozenBatchNorm()])
        return results, nets

    def record(self, cfg: Config, nets: dict[str, nn.Module]) -> dict:
        """What each strategy froze and the learning rate of each parameter group."""
        out = {}
        for s, net in nets.items():
            groups = ({"all": cfg.lr} if s == "scratch" else
                      {g["name"]: g["lr"] for g in backbones.param_groups(
                          net, cfg.lr, cfg.body_lr_scale)})
            out[s] = {"frozen_layers": backbones.frozen_layers(net), **backbones.counts(net),
                      "lr_groups": groups}
        if "finetune" in out:
            out["finetune"]["warmup_epochs"] = cfg.warmup_epochs
            out["finetune"]["unfrozen_blocks"] = [n for n, _ in nets["finetune"].blocks()
                                                  [-cfg.unfreeze:]]
        return {"backbone": cfg.backbone, "strategies": out}


def metrics(acc: dict, cfg: Config, source: dict, record: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for s, by_n in acc.items():
        for n, values in by_n.items():
            out[f"{s}_acc_n{n}"] = float(np.mean(values))
            out[f"{s}_acc_n{n}_std"] = float(np.std(values))
    n0 = cfg.labels[0]
    transfer = [s for s in ("features", "finetune") if s in acc]
    if "scratch" in acc and transfer:
        best = max(out[f"{s}_acc_n{n0}"] for s in transfer)
        out["transfer_gain"] = best - out[f"scratch_acc_n{n0}"]
    if "source_acc" in source:
        out["source_acc"] = float(source["source_acc"])
    for s, r in record["strategies"].items():
        out[f"{s}_trainable"] = float(r["trainable"])
        out[f"{s}_frozen"] = float(r["frozen"])
        for g, lr in r["lr_groups"].items():
            out[f"{s}_lr_{g}"] = float(lr)
    return out


def accuracy_figure(acc: dict, cfg: Config) -> Figure:
    """Test accuracy against labels per class, one line per strategy (mean, bars: std)."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for s, by_n in acc.items():
        ns = sorted(by_n)
        mean = [np.mean(by_n[n]) for n in ns]
        std = [np.std(by_n[n]) for n in ns]
        ax.errorbar(ns, mean, yerr=std, marker="o", capsize=3, label=s)
    ax.set_xscale("log")
    ax.set_xticks(cfg.labels, [str(n) for n in cfg.labels])
    ax.set_xlabel("labelled images per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{cfg.backbone} backbone, digits {cfg.targets}: mean ± std over "
                 f"{cfg.seeds} seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def gradcam(net: backbones.TransferNet, x: torch.Tensor, target: torch.Tensor,
            size: tuple[int, int]) -> np.ndarray:
    """Grad-CAM (captum) of the body's last block for class `target`, upsampled to `size`."""
    from captum.attr import LayerAttribution, LayerGradCam

    net.eval()
    device = next(net.parameters()).device
    layer = list(net.body.children())[-2]  # the last block before the pooling
    cam = LayerGradCam(net, layer).attribute(x.to(device), target=target.to(device),
                                             relu_attributions=True)
    return LayerAttribution.interpolate(cam, size, "bilinear").detach().cpu().numpy()[:, 0]


def gradcam_vs_lime(nets: dict[str, nn.Module], data: Dataset, cfg: Config) -> Figure:
    """For a few test digits: the image, then per strategy Grad-CAM next to LIME's segment
    weights for the predicted class (green/warm: for it)."""
    import explain

    n = min(cfg.explain_samples, 4)
    x = data.test.x[:n]
    cols = 1 + 2 * len(nets)
    fig = Figure(figsize=(1.6 * cols, 1.7 * n + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, cols, squeeze=False))
    for j, (s, net) in enumerate(nets.items()):
        with torch.no_grad():
            pred = net.eval()(x.to(next(net.parameters()).device)).argmax(-1).cpu()
        cams = gradcam(net, x, pred, (8, 8))
        subject = default_subject("image", net, data, cfg, n=n)
        explainer = explain.get_explainer("image")()
        explainer.prepare(subject)
        for i in range(n):
            e = explainer.explain_one(subject, i, cfg.seed, cfg.explain_num_samples)
            w = np.array(list(e.weights.values()))[e.arrays["segments"]]
            lim = float(np.abs(w).max()) or 1.0
            axes[i, 1 + 2 * j].imshow(cams[i], cmap="inferno")
            axes[i, 2 + 2 * j].imshow(w, cmap="RdYlGn", vmin=-lim, vmax=lim)
            if i == 0:
                axes[i, 1 + 2 * j].set_title(f"{s}\nGrad-CAM", fontsize=8)
                axes[i, 2 + 2 * j].set_title(f"{s}\nLIME", fontsize=8)
            axes[i, 1 + 2 * j].set_xlabel(f"pred {data.class_names[int(pred[i])]}", fontsize=7)
    for i in range(n):
        axes[i, 0].imshow(x[i].reshape(8, 8).numpy(), cmap="gray")
        axes[i, 0].set_ylabel(f"true {data.class_names[int(data.test.y[i])]}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("where the model looks: Grad-CAM (last conv block) vs LIME (segments)",
                 fontsize=9)
    return fig
