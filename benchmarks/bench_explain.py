"""Cost of an explanation through the framework vs a bare `lime` call (target: <= 1.2x).

One 8x8 sklearn digit, an MLP trained for a few epochs, 1000 perturbations, the same 2x2 grid
segmentation and hide_color for every variant. Runs are interleaved (bare, framework, ...) in
one process so machine noise hits all variants alike; median and min over the repeats.

    python benchmarks/bench_explain.py [--repeats 20] [--num-samples 1000]

The framework's compute (`explain(..., figures=False)`) includes what the bare call lacks: the
subject checks, one forward pass to pick the explained class, and the deletion test (one more
forward pass on 12 copies). Figure rendering is reported separately: it is not compute.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

# lime 0.2.0.1's image sampler draws a tqdm bar per call; silence it for every variant alike
# (tqdm reads this when it is imported, so before lime).
os.environ.setdefault("TQDM_DISABLE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import skimage  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from lime.lime_image import LimeImageExplainer  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import explain  # noqa: E402
from explain.image import ImageExplainer  # noqa: E402
from explain.segmentation import grid_segments  # noqa: E402


def train_mlp(x: np.ndarray, y: np.ndarray, epochs: int = 5) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def per_kind(n: int, repeats: int) -> dict[str, dict]:
    """ms per explanation for each explainer kind the labs use: LIME with its deletion test
    (`explain(..., figures=False)`), the KernelSHAP comparison beside it (tabular subjects:
    the tabular labs and the RL policies), and the figure. Untrained small models: LIME's cost
    is its sampling and local fit, not the model's forward pass."""
    from explain import shap as shap_mod
    from explain.base import get_explainer

    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def net(d_in: int, d_out: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(d_in, 32), torch.nn.Tanh(),
                                   torch.nn.Linear(32, d_out)).eval()

    vocab = "good bad not great awful fine movie plot acting was very the a".split()

    def text_predict(texts: np.ndarray) -> np.ndarray:  # a bag-of-words linear scorer
        w = np.linspace(-1, 1, len(vocab))
        counts = np.array([[t.split().count(v) for v in vocab] for t in texts], np.float64)
        z = counts @ w
        return np.stack([1 / (1 + np.exp(z)), 1 / (1 + np.exp(-z))], axis=1)

    digits = load_digits()
    x64 = (digits.data / 16.0).astype(np.float32)
    iris_like = rng.normal(size=(150, 4)).astype(np.float32)
    cart = rng.normal(scale=(1.0, 0.5, 0.1, 0.5), size=(500, 4)).astype(np.float32)
    subjects = {
        "tabular, 4 features (iris-mlp)": explain.Subject(
            "tabular", explain.torch_predict(net(4, 3)), iris_like[:1], train=iris_like),
        "tabular, 4 features (a CartPole policy)": explain.Subject(
            "tabular", explain.torch_predict(net(4, 2)), cart[:1], train=cart),
        "tabular, 64 features (digits as a table)": explain.Subject(
            "tabular", explain.torch_predict(net(64, 10)), x64[:1], train=x64[:500]),
        "image, 8x8 digit, 16 grid segments (digits-mlp)": explain.Subject(
            "image", explain.torch_predict(net(64, 10)), x64[:1], image_shape=(8, 8)),
        "text, 12 words (sentiment-rnn)": explain.Subject(
            "text", text_predict,
            np.array(["the movie was not good the plot was very bad acting fine"])),
    }
    out = {}
    for name, subject in subjects.items():
        def lime_call(subject=subject):
            return explain.explain(subject, None, n=1, num_samples=n, figures=False)

        report = lime_call()  # warm-up (imports, first calls)
        lime_ms = statistics.median(timed(lime_call) for _ in range(max(3, repeats // 4)))
        shap_ms = None
        if subject.kind == "tabular":
            e = report.explanations[0]

            def shap_call(subject=subject, e=e):
                shap_mod.compare(subject, e, 0)

            shap_call()
            shap_ms = statistics.median(timed(shap_call) for _ in range(max(3, repeats // 4)))
        explainer = get_explainer(subject.kind)()
        explainer.prepare(subject)
        e = report.explanations[0]
        fig_ms = figure_ms(explainer, subject, e, 3)
        out[name] = {"lime_ms": round(lime_ms, 2),
                     "shap_ms": None if shap_ms is None else round(shap_ms, 2),
                     "figure_ms": round(statistics.median(fig_ms), 1)}
    return out


def figure_ms(explainer, subject, e, repeats: int) -> list[float]:
    """ms to draw an explanation's figure and render it to PNG, as explain.runner saves it."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fig = explainer.figure(subject, e)
        fig.set_dpi(100)
        FigureCanvasAgg(fig).print_png(io.BytesIO())
        out.append((time.perf_counter() - t) * 1e3)
    return out


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--no-write", action="store_true", help="print only, keep the JSON as is")
    args = ap.parse_args()
    n = args.num_samples

    from labs import threads

    threads.apply(0)  # the framework's thread rule, for every variant alike
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    model = train_mlp(x[:1500], y[:1500])
    sample = x[1500]
    image = np.repeat(sample.reshape(8, 8, 1), 3, axis=2)  # what lime gets
    grid = grid_segments(8, 8, 2)
    with torch.inference_mode():
        target = int(model(torch.from_numpy(sample[None])).argmax())

    def plain_predict(imgs: np.ndarray) -> np.ndarray:  # what a user would write for lime
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(imgs[..., 0], np.float32).reshape(-1, 64))
            return torch.softmax(model(batch), -1).numpy()

    def bare(**kw):
        return LimeImageExplainer(random_state=0).explain_instance(
            image, plain_predict, hide_color=0.0, num_samples=n,
            segmentation_fn=lambda _img: grid, random_seed=0, **kw)

    subject = explain.Subject("image", explain.torch_predict(model), x[1500:1501],
                              labels=y[1500:1501], image_shape=(8, 8))
    variants = {
        "bare lime (labels=(c,), top_labels=None, batch_size=n)":
            lambda: bare(labels=(target,), top_labels=None, batch_size=n),
        "bare lime, lime defaults (top_labels=5, batch_size=10)": lambda: bare(),
        "explain(figures=False)": lambda: explain.explain(subject, None, n=1, num_samples=n,
                                                          figures=False),
        "explain(figures=False, sampler='lime')":
            lambda: explain.explain(subject, None, n=1, num_samples=n, figures=False,
                                    sampler="lime"),
    }
    for fn in variants.values():  # warm-up: imports, allocator, torch kernels
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn))

    # Figure rendering, per explanation (not compute).
    explainer = ImageExplainer()
    explainer.prepare(subject)
    e = explainer.explain_one(subject, 0, 0, n)
    fig_ms = figure_ms(explainer, subject, e, 5)

    kinds = per_kind(n, args.repeats)

    print(f"python {platform.python_version()} · numpy {np.__version__} · torch {torch.__version__}"
          f" ({torch.get_num_threads()} threads) · lime {version('lime')}"
          f" · scikit-learn {sklearn.__version__} · scikit-image {skimage.__version__}")
    print(f"one 8x8 digit, MLP 64-64-10, {n} perturbations, 2x2 grid = {grid.max() + 1} segments,"
          f" {args.repeats} interleaved runs after a warm-up\n")
    first = times[next(iter(variants))]
    ref_med, ref_min = statistics.median(first), min(first)
    print(f"{'variant':<58} {'median ms':>10} {'min ms':>8} {'ratio (median / min)':>21}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<58} {med:>10.1f} {min(ts):>8.1f} "
              f"{med / ref_med:>11.2f}x / {min(ts) / ref_min:.2f}x")
    print(f"\nper explainer kind ({n} perturbations, median of {max(3, args.repeats // 4)} after a "
          f"warm-up):")
    print(f"{'kind (model)':<48} {'LIME ms':>8} {'KernelSHAP ms':>14} {'figure ms':>10}")
    for name, k in kinds.items():
        shap_ms = "-" if k["shap_ms"] is None else f"{k['shap_ms']:.1f}"
        print(f"{name:<48} {k['lime_ms']:>8.1f} {shap_ms:>14} {k['figure_ms']:>10.0f}")
    print(f"\nfigure rendering per explanation (3-panel PNG, dpi 100): median "
          f"{statistics.median(fig_ms):.0f} ms, min {min(fig_ms):.0f} ms (not in the ratio)")
    result = {"machine": _common.machine(), "repeats": args.repeats,
              "setting": f"one 8x8 digit, MLP 64-64-10, {n} perturbations, 2x2 grid = "
                         f"{grid.max() + 1} segments, {args.repeats} interleaved runs",
              "variants": {name: {"median": round(statistics.median(ts), 2),
                                  "min": round(min(ts), 2),
                                  "ratio_median": round(statistics.median(ts) / ref_med, 3)}
                           for name, ts in times.items()},
              "figure_ms": round(statistics.median(fig_ms), 1), "kinds": kinds}
    if not args.no_write:
        print(f"wrote {_common.write('explain', result)}")


if __name__ == "__main__":
    main()
