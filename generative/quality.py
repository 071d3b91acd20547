"""Offline quality scores for generated 8x8 digits, judged by a small digits classifier.

NOT Inception-FID: "digits-FID" is the Fréchet distance between Gaussians fitted to the
64-d penultimate features of a dense digits classifier (64 -> 128 -> 64 -> 10, ReLU) that the
framework trains itself on scikit-learn's digits in [0, 1] (pixel / 16): 80 % of them,
stratified split with seed 0, random 1-pixel shifts, 30 epochs, 0.967 held-out accuracy.
The trained judge ships with the package (`generative/digits_judge.pt`, 72 KB, made by
`python -m generative.quality`) so every machine scores with the same weights. When its stored
recipe differs from `RECIPE` (someone changed the recipe), the judge is trained once (seconds
on an idle CPU) and cached as `<cache>/quality/digits-judge-<hash>.pt`, `<cache>` being
`$LAB_CACHE_DIR`, else `~/.cache/labs`, `<hash>` a hash of the recipe. Numbers are comparable
between runs scored by the same judge, never with published (Inception) FIDs.

- `digits_fid`: Fréchet distance of the samples' features to the reference's (lower is better;
  the test digits against the training digits are the floor, uniform noise is far above).
- `digits_is`: the Inception-Score analogue, exp E[KL(p(y|x) || p(y))], from 1 to 10: high when
  each sample is one clear digit and all ten digits occur.
- `confidence`: the judge's mean top probability; `class_coverage`: how many of the ten digits
  get at least half of their fair share (5 %) of the samples (mode collapse makes it fall).
- `tstr_acc`: train on synthetic, test on real: a logistic regression fitted to the samples
  with the judge's labels, scored on real test digits (`trtr_acc`: the same with as many real
  training digits, the ceiling).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

RECIPE = {"name": "digits-judge", "version": 1, "widths": [64, 128, 64, 10], "epochs": 30,
          "lr": 3e-3, "batch_size": 32, "shift": 1, "test_size": 0.2, "seed": 0}
FAIR_SHARE = 0.5  # a class is covered with at least half of its 1/10 share of the samples


def cache_dir() -> Path:
    """Where trained judges are kept: `$LAB_CACHE_DIR/quality` or `~/.cache/labs/quality`."""
    root = os.environ.get("LAB_CACHE_DIR") or Path.home() / ".cache" / "labs"
    return Path(root) / "quality"


def recipe_hash(recipe: dict | None = None) -> str:
    return hashlib.sha256(json.dumps(recipe or RECIPE, sort_keys=True).encode()).hexdigest()[:12]


class JudgeNet(nn.Module):
    """Dense digits classifier; `features` is the penultimate layer the FID reads."""

    def __init__(self, widths: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-2], widths[1:-1], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-2], widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Judge:
    """The trained classifier on the CPU: features, class probabilities, scores."""

    def __init__(self, net: JudgeNet, test_acc: float, key: str):
        self.net = net.eval()
        self.test_acc = test_acc
        self.key = key

    @torch.no_grad()
    def _run(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        t = torch.as_tensor(np.asarray(x if not hasattr(x, "detach") else x.detach().cpu()),
                            dtype=torch.float32)
        t = t.reshape(len(t), -1) if t.ndim > 1 else t.reshape(1, -1)
        if t.shape[1] != 64:  # 28x28 images would silently become 12.25 fake digits each
            raise ValueError(f"the digits judge scores 8x8 digits (64 pixels), not "
                             f"{t.shape[1]}-pixel images")
        f = self.net.features(t)
        return f.double().numpy(), torch.softmax(self.net.head(f), -1).double().numpy()

    def features(self, x: Any) -> np.ndarray:
        return self._run(x)[0]

    def probs(self, x: Any) -> np.ndarray:
        return self._run(x)[1]


def _train(recipe: dict) -> tuple[JudgeNet, float]:
    """Train the judge with the shared trainer, without touching the caller's RNG state."""
    from sklearn.datasets import load_digits

    from labs import TensorLoader, Trainer, augmented_step, datasets, images

    d = load_digits()
    data = datasets.from_arrays(d.data / 16.0, d.target, test_size=recipe["test_size"],
                                scale=False, seed=recipe["seed"], image_shape=(8, 8))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe["seed"])
        net = JudgeNet(recipe["widths"])
        trainer = Trainer(net, torch.optim.Adam(net.parameters(), recipe["lr"]),
                          nn.CrossEntropyLoss(), epochs=recipe["epochs"],
                          step=augmented_step(images.random_shifts(recipe["shift"], (8, 8))))
        trainer.fit(TensorLoader(data.train, recipe["batch_size"], seed=recipe["seed"]))
        acc = trainer.evaluate(data.test)["acc"]
    return net.eval(), float(acc)


@functools.lru_cache(maxsize=4)
def _judge_at(path: str, key: str) -> Judge:
    from labs import rng_untouched

    # Cached: only a process's first call builds the judge, and building it draws (JudgeNet's
    # layers initialize their weights before the checkpoint replaces them). Those draws moved
    # the run's torch generator in the first GAN run of a process only: seed 0 reached
    # digits-FID 8.38 alone and 5.30 after another judged lab (a VAE) in the same process.
    with rng_untouched():
        return _build_judge(Path(path), key)


def _build_judge(p: Path, key: str) -> Judge:
    from labs import checkpoint

    if p.is_file():
        try:
            state = checkpoint.load(p, require=("model", "test_acc"))
            net = JudgeNet(RECIPE["widths"])
            net.load_state_dict(state["model"])
            return Judge(net, float(state["test_acc"]), key)
        except Exception:  # a damaged cache file is rebuilt, never fatal
            pass
    net, acc = _train(RECIPE)
    if p != SHIPPED:  # the shipped file is only ever written by `python -m generative.quality`
        checkpoint.save({"model": net.state_dict(), "test_acc": acc,
                         "recipe": json.dumps(RECIPE)}, p)
    return Judge(net, acc, key)


SHIPPED = Path(__file__).with_name("digits_judge.pt")


@functools.lru_cache(maxsize=1)
def shipped_recipe() -> dict | None:
    """The recipe the shipped judge was trained with (None when it is missing)."""
    from labs import checkpoint

    if not SHIPPED.is_file():
        return None
    return json.loads(checkpoint.load(SHIPPED, require=("recipe",))["recipe"])


def judge() -> Judge:
    """The digits judge: the shipped one when it was trained with `RECIPE`, else one from the
    cache, trained (a few seconds) and cached on first use."""
    key = recipe_hash()
    if shipped_recipe() == RECIPE:
        return _judge_at(str(SHIPPED), key)
    return _judge_at(str(cache_dir() / f"digits-judge-{key}.pt"), key)


if __name__ == "__main__":  # retrain the shipped judge after changing RECIPE
    from labs import checkpoint

    trained, accuracy = _train(RECIPE)
    checkpoint.save({"model": trained.state_dict(), "test_acc": accuracy,
                     "recipe": json.dumps(RECIPE)}, SHIPPED)
    print(f"{SHIPPED}: held-out accuracy {accuracy:.4f}, recipe {recipe_hash()}")


def frechet(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples)."""
    from scipy import linalg

    mu1, mu2 = f1.mean(0), f2.mean(0)
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    with warnings.catch_warnings():  # dead ReLU features make the product singular: fine
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(c1 @ c2)
        if not np.isfinite(covmean).all():  # regularize, as pytorch-fid does
            eps = np.eye(len(c1)) * 1e-6
            covmean = linalg.sqrtm((c1 + eps) @ (c2 + eps))
    covmean = np.real(covmean)
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean), 0.0))


def coverage(probs: np.ndarray) -> int:
    """How many classes get at least FAIR_SHARE of their 1/C share of the samples' argmax."""
    n, c = probs.shape
    counts = np.bincount(probs.argmax(1), minlength=c)
    return int((counts >= FAIR_SHARE * n / c).sum())


def inception_score(probs: np.ndarray) -> float:
    py = probs.mean(0, keepdims=True)
    kl = (probs * (np.log(probs + 1e-12) - np.log(py + 1e-12))).sum(1)
    return float(np.exp(kl.mean()))


def skipped_note(lab: str, dataset: str) -> str:
    """The one line a run on another data set prints instead of its quality scores."""
    return (f"{lab}: digits-FID, digits-IS, coverage and train-on-synthetic scores skipped on "
            f"{dataset}: their judge is an 8x8 digits classifier, not a {dataset} one")


def scores(samples: Any, reference: Any, j: Judge | None = None) -> dict[str, float]:
    """digits-FID against `reference` (real digits), digits-IS, confidence, class coverage."""
    j = j or judge()
    f, p = j._run(samples)
    return {"digits_fid": frechet(f, j.features(reference)), "digits_is": inception_score(p),
            "confidence": float(p.max(1).mean()), "class_coverage": float(coverage(p))}


def tstr(samples: Any, test_x: Any, test_y: np.ndarray, train_x: Any = None,
         train_y: np.ndarray | None = None, j: Judge | None = None) -> dict[str, float]:
    """Train on synthetic (labelled by the judge), test on real; with real training data, the
    same classifier on as many real digits (`trtr_acc`) for the ceiling."""
    j = j or judge()
    xs = _flat(samples)
    ys = j.probs(xs).argmax(1)
    out = {"tstr_acc": _fit_score(xs, ys, _flat(test_x), test_y)}
    if train_x is not None and train_y is not None:
        n = min(len(xs), len(train_y))
        out["trtr_acc"] = _fit_score(_flat(train_x)[:n], np.asarray(train_y)[:n], _flat(test_x),
                                     test_y)
    return out


def _flat(x: Any) -> np.ndarray:
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return a.reshape(len(a), -1).astype(np.float64)


def _fit_score(x: np.ndarray, y: np.ndarray, tx: np.ndarray, ty: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:  # one class only (total collapse): always answer it
        return float((np.asarray(ty) == y[0]).mean())
    clf = LogisticRegression(max_iter=2000).fit(x, y)
    return float(clf.score(tx, ty))


def reference_scores(train: Any, test: Any, seed: int, n: int = 512,
                     j: Judge | None = None) -> dict[str, float]:
    """The yardsticks: the test digits' FID against the training digits (the floor a perfect
    generator would reach at this sample size) and uniform noise's (the ceiling)."""
    j = j or judge()
    noise = np.random.default_rng(seed).uniform(0, 1, size=(n, 64))
    ref = j.features(train)
    return {"test_digits_fid": frechet(j.features(test), ref),
            "noise_digits_fid": frechet(j.features(noise), ref)}
