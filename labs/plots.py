"""Figures most labs want: training curves, confusion matrices, image grids, decision surfaces.

Each function returns a matplotlib `Figure` made without pyplot (no global figure state, no GUI
backend needed); hand it to `run.figure(name, fig)`. Figures use constrained layout; those
that draw names of any length (class names, axis labels given by the lab) are also grown to fit
them (`explain.figures.fit_canvas`), so names never overlap or run off the canvas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from explain.figures import fit_canvas

# Width of one character of tick-label text, in inches, at matplotlib's default 10 pt: what a
# figure reserves for names before fit_canvas corrects the estimate from the drawn text.
_CHAR_IN = 0.075


def curves(history: Any, keys: Sequence[str] = ("loss", "acc"), title: str = "") -> Figure:
    """One panel per metric, train and validation curves over epochs."""
    epochs = [e["epoch"] for e in history.epochs]
    fig = Figure(figsize=(5 * len(keys), 3.6), layout="constrained")
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for split in ("train", "val"):
            ys = [e.get(f"{split}_{key}") for e in history.epochs]
            if any(y is not None for y in ys):
                ax.plot(epochs, ys, marker="." if len(epochs) < 30 else None, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def confusion(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str] | None = None,
              title: str = "confusion matrix") -> Figure:
    """Counts of true (rows) vs predicted (columns) classes.

    Cells are at least 0.5 in wide; column names that do not fit a cell are written vertically,
    and the figure makes room for the longest name.
    """
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = int(max(y_true.max(), y_pred.max())) + 1
    names = [str(c) for c in class_names] if class_names else [str(i) for i in range(n)]
    cm = confusion_matrix(y_true, y_pred, labels=range(len(names)))
    cell = 0.5
    name_in = _CHAR_IN * max(len(s) for s in names)
    vertical = name_in > 0.9 * cell
    side = max(2.0, cell * len(names))
    fig = Figure(figsize=(side + name_in + 1.6, side + (name_in if vertical else 0.2) + 1.2),
                 layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(names)), names, rotation=90 if vertical else 0)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (r, c), v in np.ndenumerate(cm):
        if v:
            ax.text(c, r, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > cm.max() / 2 else "black")
    return fit_canvas(fig)


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str] = (), cols: int = 8,
               title: str = "", cmap: str = "gray_r", symmetric: bool = False) -> Figure:
    """Small images in a grid, each with an optional title.

    `symmetric=True` centres each image's colour scale on 0 (for weights and signed responses:
    pick a diverging `cmap` such as "RdBu_r"), so zero always has the same colour.
    """
    n = max(len(images), 1)
    cols = min(cols, n)
    rows = -(-n // cols)
    longest = max((len(str(t)) for t in titles), default=0)
    col = max(1.3, 0.8 * _CHAR_IN * longest + 0.3)  # room for an 8 pt title and a gap
    fig = Figure(figsize=(col * cols, 1.5 * rows + (0.4 if title else 0)), layout="constrained")
    for i, img in enumerate(images):
        ax = fig.add_subplot(rows, cols, i + 1)
        img = np.asarray(img)
        if symmetric:
            lim = float(np.abs(img).max()) or 1.0
            ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim)
        else:
            ax.imshow(img, cmap=cmap)
        ax.set_axis_off()
        if i < len(titles):
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    return fit_canvas(fig)  # titles of any length: the grid widens, titles stay apart


def filters(weight: Any, title: str = "learned filters", cols: int = 8,
            limit: int = 64) -> Figure:
    """A convolution layer's kernels, one small image each, red positive and blue negative.

    weight: the layer's `(out_channels, in_channels, kh, kw)` weights (a tensor or an array);
        a kernel over several input channels is shown as its mean over them. At most `limit`
        kernels are drawn.
    """
    w = _numpy(weight)
    if w.ndim != 4:
        raise ValueError(f"filters() takes (out, in, kh, kw) weights, not shape {w.shape}")
    kernels = w[:limit].mean(axis=1)
    return image_grid(list(kernels), [str(i) for i in range(len(kernels))], cols=cols,
                      title=f"{title} ({w.shape[0]} x {w.shape[1]}@{w.shape[2]}x{w.shape[3]})",
                      cmap="RdBu_r", symmetric=True)


def feature_maps(image: np.ndarray, maps: dict[str, Any], per_layer: int = 8,
                 title: str = "feature maps") -> Figure:
    """One input image and, in a row per layer, the first `per_layer` channels it produces.

    image: what the network saw, as `imshow` shows it (e.g. `data.display(x)`).
    maps: `{layer name: (channels, H, W)}` activations of that one image (tensors or arrays).
    """
    rows = len(maps) + 1
    fig = Figure(figsize=(1.3 * per_layer, 1.45 * rows + 0.4), layout="constrained")
    grid = fig.add_gridspec(rows, per_layer)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(np.asarray(image), cmap="gray_r")
    ax.set_title("input", fontsize=8)
    ax.set_axis_off()
    for r, (name, act) in enumerate(maps.items(), start=1):
        act = _numpy(act)
        for c in range(min(per_layer, len(act))):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(act[c], cmap="viridis")
            ax.set_title(f"{name} #{c}" if c == 0 else f"#{c}", fontsize=8)
            ax.set_axis_off()
    fig.suptitle(title)
    return fit_canvas(fig)


def matrices(mats: dict[str, Any], title: str = "", fmt: str = "g") -> Figure:
    """Small matrices side by side, each cell coloured and written out (worked examples).

    mats: `{caption: 2-D array}`; a diverging colour scale centred on 0 per matrix.
    """
    fig = Figure(figsize=(sum(0.5 * max(2, np.shape(m)[1]) + 0.5 for m in mats.values()),
                          0.5 * max(max(2, np.shape(m)[0]) for m in mats.values()) + 1.2),
                 layout="constrained")
    for i, (name, m) in enumerate(mats.items()):
        m = np.atleast_2d(_numpy(m)).astype(float)
        ax = fig.add_subplot(1, len(mats), i + 1)
        lim = float(np.abs(m).max()) or 1.0
        ax.imshow(m, cmap="RdBu_r", vmin=-1.6 * lim, vmax=1.6 * lim)  # pale: numbers stay legible
        for (r, c), v in np.ndenumerate(m):
            ax.text(c, r, format(v + 0.0, fmt), ha="center", va="center", fontsize=9)  # no -0
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title)
    return fit_canvas(fig)


def decision_surface(model: Any, x: Any, y: Any = None, *, target: int = 1,
                     margin: float = 0.5, resolution: int = 150,
                     feature_names: Sequence[str] = ("x1", "x2"), label: str = "",
                     title: str = "decision surface") -> Figure:
    """The probability of class `target` over the plane of two input features, with the 0.5
    contour and the points `x` (coloured by their labels `y`) on top.

    model: a `Trainer` (its `predict` gives logits: softmax, or a sigmoid for one output, turns
        them into probabilities) or a function from an (n, 2) float32 array to probabilities,
        (n, classes) or (n,) for the target class.
    x, y: (n, 2) points and their labels (tensors or arrays); the plane spans the points plus
        `margin` on each side.
    """
    x = _numpy(x).astype(np.float32)
    lo, hi = x.min(axis=0) - margin, x.max(axis=0) + margin
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], resolution, dtype=np.float32),
                         np.linspace(lo[1], hi[1], resolution, dtype=np.float32))
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    p = np.asarray(_probabilities(model)(grid), dtype=np.float64)
    p = (p if p.ndim == 1 else p[:, target]).reshape(xx.shape)

    fig = Figure(figsize=(5.2, 4.0), layout="constrained")
    ax = fig.add_subplot()
    cs = ax.contourf(xx, yy, p, levels=np.linspace(0, 1, 21), cmap="RdBu_r", vmin=0, vmax=1)
    if p.min() < 0.5 < p.max():
        ax.contour(xx, yy, p, levels=[0.5], colors="k", linewidths=1.5)
    fig.colorbar(cs, ax=ax, label=label or f"P(class {target})", ticks=np.linspace(0, 1, 6))
    size = 120 if len(x) <= 20 else 18  # a few points (XOR's four) drawn large
    if y is None:
        ax.scatter(x[:, 0], x[:, 1], c="k", s=size)
    else:
        ax.scatter(x[:, 0], x[:, 1], c=_numpy(y) == target, cmap="RdBu_r", edgecolors="k",
                   s=size, vmin=0, vmax=1)
    ax.set_xlabel(feature_names[0])
    ax.set_ylabel(feature_names[1])
    ax.set_title(title)
    return fit_canvas(fig)


def heatmap(values: Any, rows: Sequence[Any], cols: Sequence[Any], *, row_label: str = "",
            col_label: str = "", title: str = "", fmt: str = ".3f", cmap: str = "viridis",
            colorbar: str = "") -> Figure:
    """A grid of numbers as a coloured, annotated table (a hyperparameter grid's scores).

    values: a 2-D array, one row per `rows` entry and one column per `cols` entry; NaN cells
    stay blank (a grid cell that was not run).
    """
    v = np.atleast_2d(_numpy(values)).astype(float)
    if v.shape != (len(rows), len(cols)):
        raise ValueError(f"heatmap: values of shape {v.shape} for {len(rows)} rows x "
                         f"{len(cols)} columns")
    fig = Figure(figsize=(1.0 * len(cols) + 2.5, 0.6 * len(rows) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, aspect="auto")
    finite = v[np.isfinite(v)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (r, c), x in np.ndenumerate(v):
        if np.isfinite(x):  # dark text on the light end of the scale, light on the dark end
            ax.text(c, r, format(x, fmt), ha="center", va="center", fontsize=9,
                    color="k" if x > mid else "w")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    fig.colorbar(im, ax=ax, label=colorbar)
    ax.set_title(title)
    return fit_canvas(fig)


def _probabilities(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    if not hasattr(model, "predict"):
        return model  # already a numpy predict function

    def predict(grid: np.ndarray) -> np.ndarray:
        import torch

        out = model.predict(torch.from_numpy(grid)).float()
        prob = out.softmax(-1) if out.ndim == 2 and out.shape[1] > 1 else out.sigmoid().ravel()
        return prob.detach().cpu().numpy()

    return predict


def _numpy(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def per_class(y_true: Any, preds: Any, class_names: Sequence[str] | None = None,
              title: str = "accuracy per class") -> Figure:
    """Accuracy on each class as bars: `preds` is one model's predictions, or a dict of them by
    model name (grouped bars), all against the same `y_true`."""
    from labs.images import per_class_accuracy

    preds = preds if isinstance(preds, dict) else {"": preds}
    y_true = _numpy(y_true).ravel()
    n = len(class_names) if class_names else int(y_true.max()) + 1
    names = list(class_names) if class_names else [str(c) for c in range(n)]
    fig = Figure(figsize=(max(5.0, 0.5 * n * max(1, len(preds)) ** 0.5 + 2), 3.6),
                 layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(preds)
    for i, (label, pred) in enumerate(preds.items()):
        acc = per_class_accuracy(y_true, _numpy(pred), n)
        ax.bar(np.arange(n) + (i - (len(preds) - 1) / 2) * width, acc, width,
               label=label or None)
    ax.set_xticks(np.arange(n), names, rotation=30 if max(map(len, names)) > 3 else 0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3, axis="y")
    if len(preds) > 1:
        ax.legend(fontsize=7, ncols=min(len(preds), 4))
    ax.set_title(title)
    return fit_canvas(fig)
