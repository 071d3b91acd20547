"""Convolution and pooling computed by hand on small matrices and checked against torch."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from labs import Lab, LabConfig, option, plots

X = np.array([[1, 2, 1, 0], [0, 1, 2, 1], [1, 2, 2, 2], [2, 2, 1, 0]], dtype=np.float64)
K = np.array([[1, 0], [0, -1]], dtype=np.float64)
PATCH = np.array([[3, 2, 1], [1, 2, 3], [1, 1, 1]], dtype=np.float64)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)  # vertical edges
EDGE_FILTERS = {
    "Sobel x (vertical edges)": SOBEL_X,
    "Sobel y (horizontal edges)": SOBEL_X.T.copy(),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
}
# (input side n, kernel side f, padding: "valid" | "same", stride)
SIZE_CASES = [(4, 2, "valid", 1), (6, 3, "valid", 1), (6, 3, "same", 1), (8, 5, "valid", 1),
              (8, 5, "same", 1), (7, 3, "valid", 2), (6, 3, "same", 2), (28, 5, "valid", 1)]


@dataclass
class Config(LabConfig):
    image: str = option("china.jpg", "scikit-learn sample image the edge filters are applied to",
                        choices=("china.jpg", "flower.jpg"))


# -- by hand ---------------------------------------------------------------------------------

def correlate(x: np.ndarray, k: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Cross-correlation, what deep-learning libraries call convolution: slide `k` over `x`
    (zero-padded by `padding` on every side) and sum the element-wise products."""
    x = np.pad(np.asarray(x, dtype=np.float64), padding)
    f = k.shape[0]
    n = output_size(x.shape[0], f, 0, stride)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            r, c = i * stride, j * stride
            out[i, j] = np.sum(x[r:r + f, c:c + f] * k)
    return out


def convolve(x: np.ndarray, k: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Convolution in the mathematical sense: cross-correlation with the kernel flipped in both
    axes (rotated 180 degrees)."""
    return correlate(x, k[::-1, ::-1], stride, padding)


def output_size(n: int, f: int, padding: int = 0, stride: int = 1) -> int:
    """Side of the output of an f x f kernel over an n x n input: floor((n + 2p - f) / s) + 1;
    n - f + 1 for "valid" (p = 0, s = 1), n for "same" (p = (f - 1) / 2, odd f)."""
    return (n + 2 * padding - f) // stride + 1


def same_padding(f: int) -> int:
    """Padding that keeps an n x n input n x n at stride 1 (odd f)."""
    return (f - 1) // 2


def pool(x: np.ndarray, size: int = 2, stride: int | None = None, op: str = "max") -> np.ndarray:
    """Max or average over each size x size window, moving `stride` (default: `size`)."""
    stride = stride or size
    n = output_size(x.shape[0], size, 0, stride)
    reduce = {"max": np.max, "avg": np.mean}[op]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = reduce(x[i * stride:i * stride + size, j * stride:j * stride + size])
    return out


def global_average(x: np.ndarray) -> float:
    """Global average pooling of one channel: the mean of all its values."""
    return float(np.mean(x))


# -- the same with torch ---------------------------------------------------------------------

def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)[None, None]


def torch_correlate(x: np.ndarray, k: np.ndarray, stride: int = 1,
                    padding: int | str = 0) -> np.ndarray:
    return F.conv2d(_t(x), _t(k), stride=stride, padding=padding)[0, 0].numpy()


def worked_examples() -> dict:
    """Every hand computation next to torch's (and scipy's true convolution), as plain data."""
    from scipy.signal import convolve2d

    ex: dict = {}
    ex["cross_correlation"] = {"input": X, "kernel": K, "by_hand": correlate(X, K),
                               "torch": torch_correlate(X, K)}
    ex["convolution"] = {"input": X, "kernel_flipped": K[::-1, ::-1], "by_hand": convolve(X, K),
                         "scipy_convolve2d": convolve2d(X, K, mode="valid")}
    ex["sobel_patch"] = {"patch": PATCH, "kernel": SOBEL_X, "products": PATCH * SOBEL_X,
                         "by_hand": float(np.sum(PATCH * SOBEL_X)),
                         "torch": float(torch_correlate(PATCH, SOBEL_X)[0, 0])}
    ex["pooling"] = {
        "input": X,
        "max_2x2_stride2": {"by_hand": pool(X, 2, 2, "max"),
                            "torch": F.max_pool2d(_t(X), 2, 2)[0, 0].numpy()},
        "avg_2x2_stride2": {"by_hand": pool(X, 2, 2, "avg"),
                            "torch": F.avg_pool2d(_t(X), 2, 2)[0, 0].numpy()},
        "max_2x2_stride1": {"by_hand": pool(X, 2, 1, "max"),
                            "torch": F.max_pool2d(_t(X), 2, 1)[0, 0].numpy()},
        "global_average": {"by_hand": global_average(X),
                           "torch": float(F.adaptive_avg_pool2d(_t(X), 1)[0, 0, 0, 0])},
    }
    rows = []
    for n, f, mode, s in SIZE_CASES:
        p = same_padding(f) if mode == "same" else 0
        out = torch_correlate(np.zeros((n, n)), np.ones((f, f)), stride=s, padding=p)
        rows.append({"n": n, "f": f, "padding": mode, "stride": s,
                     "formula": output_size(n, f, p, s), "torch": out.shape[0]})
    ex["output_sizes"] = rows
    return ex


def max_error(ex: dict) -> float:
    """The largest difference between a hand computation and its library counterpart."""
    pairs = [(ex["cross_correlation"]["by_hand"], ex["cross_correlation"]["torch"]),
             (ex["convolution"]["by_hand"], ex["convolution"]["scipy_convolve2d"]),
             (ex["sobel_patch"]["by_hand"], ex["sobel_patch"]["torch"])]
    pairs += [(v["by_hand"], v["torch"]) for k, v in ex["pooling"].items() if k != "input"]
    pairs += [(r["formula"], r["torch"]) for r in ex["output_sizes"]]
    return max(float(np.max(np.abs(np.subtract(a, b)))) for a, b in pairs)


def edge_responses(gray: np.ndarray) -> dict[str, np.ndarray]:
    """Each edge filter cross-correlated with a grayscale image ('same' size), and the
    gradient magnitude of the two Sobel responses. The border is padded by repeating the edge
    pixels: zero padding would draw a frame of false edges around the picture."""
    padded = F.pad(_t(gray), (1, 1, 1, 1), mode="replicate")[0, 0].numpy()
    out = {name: torch_correlate(padded, k) for name, k in EDGE_FILTERS.items()}
    out["gradient magnitude"] = np.hypot(out["Sobel x (vertical edges)"],
                                         out["Sobel y (horizontal edges)"])
    return out


def sample_gray(name: str) -> np.ndarray:
    """A scikit-learn sample image (shipped with it) in grayscale, values in [0, 1]."""
    from sklearn.datasets import load_sample_image

    rgb = load_sample_image(name).astype(np.float64) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma


class ConvArithmetic(Lab):
    """Convolution, padding, stride and pooling by hand, checked against torch; edge filters."""

    lesson = "cnn"
    tags = ("supervised", "cnn", "basics")
    explains = "none"  # it trains nothing: there is no model to explain
    headline = "max_error_vs_torch"
    Config = Config

    def run(self, cfg: Config, run) -> dict:
        ex = worked_examples()
        (run.dir / "arithmetic.json").write_text(json.dumps(_plain(ex), indent=1))
        run.table("output_sizes", ["n", "f", "padding", "stride", "formula", "torch"],
                  [list(r.values()) for r in ex["output_sizes"]])
        cc, cv = ex["cross_correlation"], ex["convolution"]
        run.figure("correlation_vs_convolution", plots.matrices(
            {"input x": X, "kernel k": K, "x ⋆ k (torch conv2d)": cc["torch"],
             "k flipped": cv["kernel_flipped"], "x * k (convolution)": cv["by_hand"]},
            title="cross-correlation (what torch computes) vs convolution (flipped kernel)"))
        sp = ex["sobel_patch"]
        run.figure("sobel_patch", plots.matrices(
            {"patch": PATCH, "vertical Sobel": SOBEL_X, "products": sp["products"]},
            title=f"patch ⋆ Sobel = sum of products = {sp['by_hand']:g}"))
        pl = ex["pooling"]
        run.figure("pooling", plots.matrices(
            {"input": X, "max 2x2 / 2": pl["max_2x2_stride2"]["by_hand"],
             "average 2x2 / 2": pl["avg_2x2_stride2"]["by_hand"],
             "global average": np.array([[pl["global_average"]["by_hand"]]])},
            title="pooling"))
        gray = sample_gray(cfg.image)
        edges = edge_responses(gray)
        run.figure("edges", edge_figure(gray, edges, cfg.image))
        return {"max_error_vs_torch": max_error(ex),
                "sobel_patch": sp["by_hand"],
                "global_average_pool": pl["global_average"]["by_hand"],
                "size_cases": float(len(ex["output_sizes"])),
                "edge_mean_magnitude": float(edges["gradient magnitude"].mean())}


def edge_figure(gray: np.ndarray, edges: dict[str, np.ndarray], name: str):
    from matplotlib.figure import Figure

    panels = {"grayscale": gray, **edges}
    fig = Figure(figsize=(12, 6.2), layout="constrained")
    for i, (title, img) in enumerate(panels.items()):
        ax = fig.add_subplot(2, 3, i + 1)
        if title in ("grayscale", "gradient magnitude"):
            ax.imshow(img, cmap="gray" if title == "grayscale" else "gray_r")
        else:
            lim = float(np.percentile(np.abs(img), 99.5)) or 1.0  # a few outliers aside
            ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.suptitle(f"edge detectors on {name} (3x3 kernels, 'same' size, edge pixels repeated)")
    return fig


def _plain(v):
    """Arrays and numpy scalars as lists and floats, for JSON."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v
