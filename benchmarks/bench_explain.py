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
    fig_ms = []
    for _ in range(5):
        t = time.perf_counter()
        fig = explainer.figure(subject, e)
        fig.set_dpi(100)
        FigureCanvasAgg(fig).print_png(io.BytesIO())  # as explain.runner saves it
        fig_ms.append((time.perf_counter() - t) * 1e3)

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
    print(f"\nfigure rendering per explanation (3-panel PNG, dpi 100): median "
          f"{statistics.median(fig_ms):.0f} ms, min {min(fig_ms):.0f} ms (not in the ratio)")
    result = {"machine": _common.machine(), "repeats": args.repeats,
              "setting": f"one 8x8 digit, MLP 64-64-10, {n} perturbations, 2x2 grid = "
                         f"{grid.max() + 1} segments, {args.repeats} interleaved runs",
              "variants": {name: {"median": round(statistics.median(ts), 2),
                                  "min": round(min(ts), 2),
                                  "ratio_median": round(statistics.median(ts) / ref_med, 3)}
                           for name, ts in times.items()},
              "figure_ms": round(statistics.median(fig_ms), 1)}
    if not args.no_write:
        print(f"wrote {_common.write('explain', result)}")


if __name__ == "__main__":
    main()
