"""Anomaly detection by reconstruction error: an autoencoder trained on normal digits only.

One digit class plays the "defective part" (`anomaly_digit`): it is removed from the training
and validation splits, so the autoencoder learns to rebuild the other nine only. A test digit
is flagged when its reconstruction error exceeds a threshold chosen on the normal validation
digits alone (their `threshold_quantile`, i.e. a false-alarm budget): no defect is needed to
set it. Reported: ROC-AUC of the error as a score, and the threshold's precision and recall on
the test split (normal digits plus every held-out one). LIME explains a flagged digit's score in
regression mode: which pixels make it look defective.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from generative.autoencoder import AutoEncoder
from generative.common import ImageDataConfig, grid, images, rebuild, side
from labs import Lab, Subject, option, plots


@dataclass
class Config(ImageDataConfig):
    anomaly_digit: int = option(8, "the class held out as the 'defective' one (a digit; on "
                                   "fashion-mnist a garment class)", min=0, max=9)
    threshold_quantile: float = option(0.95, "flag errors above this quantile of the normal "
                                             "validation digits' (1 - false-alarm budget)",
                                       gt=0, lt=1)
    arch: str = option("dense", "encoder/decoder kind", choices=("dense", "conv"))
    hidden: list[int] = option([64], "dense encoder widths (the decoder mirrors them)", min=1)
    latent: int = option(4, "code size: a tight code generalizes less to unseen shapes", min=1)
    epochs: int = option(80, "passes over the training data")
    lr: float = option(3e-3, "learning rate")
    val_size: float = option(0.2, "validation fraction (its normal digits set the threshold)",
                             gt=0, lt=1)


class AnomalyAE(Lab):
    """Autoencoder trained on nine digits flags the tenth by its reconstruction error."""

    lesson = "autoencoders"
    tags = ("generative", "autoencoder", "anomaly", "images")
    explains = "image"  # LIME, regression mode: the anomaly score of flagged digits
    headline = "roc_auc"
    Config = Config

    def data(self, cfg: Config):
        """The digits; train and validation keep the normal digits only, test keeps all
        (`extras["anomalous"]`: which test digits are the held-out class)."""
        data = cfg.images()
        labels = dict(data.extras["labels"])
        keep = {s: labels[s] != cfg.anomaly_digit for s in ("train", "val")}
        split = {s: type(getattr(data, s))(getattr(data, s).x[torch.from_numpy(keep[s])])
                 for s in ("train", "val")}
        labels.update({s: labels[s][keep[s]] for s in ("train", "val")})
        return dataclasses.replace(data, **split, extras={
            **data.extras, "labels": labels,
            "anomalous": labels["test"] == cfg.anomaly_digit})

    def model(self, cfg: Config, data) -> nn.Module:
        return AutoEncoder(cfg.arch, cfg.hidden, cfg.latent, side=side(data))

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        fit = run.fit(model, data, loss=nn.MSELoss(), metrics=())
        run.figure("curves", plots.curves(fit.history, keys=("loss",), title="anomaly-ae"))
        metrics = self.evaluate(cfg, {"": model}, data)
        self.figures(cfg, run, model, data, metrics["threshold"])
        return metrics

    def evaluate(self, cfg: Config, models: dict, data) -> dict:
        from sklearn.metrics import precision_score, recall_score, roc_auc_score

        model = models[""]
        threshold = float(np.quantile(scores(model, data.val.x), cfg.threshold_quantile))
        s, bad = scores(model, data.test.x), data.extras["anomalous"]
        flagged = s > threshold
        return {"roc_auc": float(roc_auc_score(bad, s)), "threshold": threshold,
                "precision": float(precision_score(bad, flagged, zero_division=0)),
                "recall": float(recall_score(bad, flagged, zero_division=0)),
                "false_alarm_rate": float(flagged[~bad].mean()),
                "normal_error": float(s[~bad].mean()), "anomaly_error": float(s[bad].mean())}

    def figures(self, cfg: Config, run, model: nn.Module, data, threshold: float) -> None:
        from matplotlib.figure import Figure
        from sklearn.metrics import roc_curve

        s, bad = scores(model, data.test.x), data.extras["anomalous"]
        fig = Figure(figsize=(10, 3.8), layout="constrained")
        ax, ax_roc = fig.subplots(1, 2)
        bins = np.linspace(0, s.max(), 40)
        ax.hist(s[~bad], bins, alpha=0.6, label="normal digits", density=True)
        ax.hist(s[bad], bins, alpha=0.6, label=f"held-out {cfg.anomaly_digit}s", density=True)
        ax.axvline(threshold, color="k", ls="--", label="threshold")
        ax.set_xlabel("reconstruction error (MSE per pixel)")
        ax.legend()
        fpr, tpr, _ = roc_curve(bad, s)
        ax_roc.plot(fpr, tpr)
        ax_roc.plot([0, 1], [0, 1], ":", color="grey")
        ax_roc.set_xlabel("false-alarm rate")
        ax_roc.set_ylabel("recall")
        ax_roc.set_title("ROC of the reconstruction error")
        run.figure("scores", fig)
        top = np.argsort(-s, kind="stable")[:10]
        x = data.test.x[top]
        labels = data.extras["labels"]["test"][top]
        run.figure("flagged", grid([images(x), images(rebuild(model, x))],
                                   [[f"{d}: {e:.3f}" for d, e in zip(labels, s[top])]],
                                   title="the ten highest anomaly scores (top) and their "
                                         "reconstructions"))

    def subjects(self, cfg: Config, model, data) -> dict:
        """The anomaly score (reconstruction MSE) of the most anomalous test digits, as a
        regression: which pixels push the score up."""
        net = model[""] if isinstance(model, dict) else model
        s = scores(net, data.test.x)
        top = np.argsort(-s, kind="stable")[:max(1, cfg.explain_samples)]
        n = side(data)
        return {"": Subject(kind="image", mode="regression",
                            predict=lambda x: scores(net, torch.as_tensor(
                                np.asarray(x), dtype=torch.float32).reshape(len(x), n * n)),
                            samples=data.test.x[top].numpy(),
                            labels=data.extras["labels"]["test"][top],
                            image_shape=(n, n), baseline=0.0, display=data.display)}


def scores(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The anomaly score of each image: its reconstruction MSE per pixel."""
    return ((rebuild(model, x) - x.float()) ** 2).mean(1).numpy().astype(np.float64)
