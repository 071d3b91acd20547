"""Figures most labs want: training curves, confusion matrices, image grids.

Each function returns a matplotlib `Figure` made without pyplot (no global figure state, no GUI
backend needed); hand it to `run.figure(name, fig)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure


def curves(history: Any, keys: Sequence[str] = ("loss", "acc"), title: str = "") -> Figure:
    """One panel per metric, train and validation curves over epochs."""
    epochs = [e["epoch"] for e in history.epochs]
    fig = Figure(figsize=(5 * len(keys), 3.6))
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
    fig.tight_layout()
    return fig


def confusion(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str] | None = None,
              title: str = "confusion matrix") -> Figure:
    """Counts of true (rows) vs predicted (columns) classes."""
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = int(max(y_true.max(), y_pred.max())) + 1
    names = list(class_names) if class_names else [str(i) for i in range(n)]
    cm = confusion_matrix(y_true, y_pred, labels=range(len(names)))
    fig = Figure(figsize=(1 + 0.5 * len(names), 0.8 + 0.5 * len(names)))
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (r, c), v in np.ndenumerate(cm):
        if v:
            ax.text(c, r, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > cm.max() / 2 else "black")
    fig.tight_layout()
    return fig


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str] = (), cols: int = 8,
               title: str = "", cmap: str = "gray_r") -> Figure:
    """Small images in a grid, each with an optional title."""
    n = max(len(images), 1)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(1.3 * cols, 1.5 * rows + (0.4 if title else 0)))
    for i, img in enumerate(images):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(np.asarray(img), cmap=cmap)
        ax.set_axis_off()
        if i < len(titles):
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
