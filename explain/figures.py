"""Figure helpers shared by the explainers and the framework's plots (`labs.plots` uses them).

A figure is laid out by matplotlib's constrained layout, which moves axes to make room for
labels but never makes the canvas larger: a long feature name or axis label can still run off
the edge and be cut in the saved PNG. `fit_canvas` grows the figure until everything drawn
lies on it.
"""

from __future__ import annotations

from typing import Any

# Inches a text may pass the edge by: constrained layout places a rotated axis label about one
# pixel (at 100 dpi) outside, whatever the figure's size; growing would not move it.
SLACK = 0.02


def fit_canvas(fig: Any, rounds: int = 3) -> Any:
    """Grow `fig` (a matplotlib Figure) until its drawn contents lie inside the canvas; returns
    `fig`. Costs one draw when everything fits (the layout engine keeps its own padding), one
    more per growth: use it where text of unknown length is drawn (names, labels)."""
    for _ in range(rounds):
        fig.draw_without_rendering()  # runs the layout engine, places every text
        box = fig.get_tightbbox()  # in inches
        w, h = fig.get_size_inches()
        grow_w = max(0.0, -box.x0) + max(0.0, box.x1 - w)
        grow_h = max(0.0, -box.y0) + max(0.0, box.y1 - h)
        if grow_w <= SLACK and grow_h <= SLACK:
            break
        fig.set_size_inches(w + grow_w + 0.05, h + grow_h + 0.05)
    return fig


def label_text(label: object) -> str:
    """A true label for a figure title: a regression target rounded (0.79889315 -> 0.799),
    a class label as it is."""
    if isinstance(label, float) or (hasattr(label, "dtype") and getattr(label, "ndim", 1) == 0
                                    and "float" in str(label.dtype)):
        return f"{float(label):.3g}"
    return str(label)
