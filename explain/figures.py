"""Figure helpers shared by the explainers and the framework's plots (`labs.plots` uses them).

A figure is laid out by matplotlib's constrained layout, which moves axes to make room for
labels but never makes the canvas larger: a long feature name or axis label can still run off
the edge and be cut in the saved PNG. `fit_canvas` grows the figure until everything drawn
lies on it.
"""

from __future__ import annotations

from typing import Any


def fit_canvas(fig: Any, pad: float = 0.05, rounds: int = 4) -> Any:
    """Grow `fig` (a matplotlib Figure) until its drawn contents lie inside the canvas, plus
    `pad` inches; returns `fig`. The layout engine runs again after each growth."""
    for _ in range(rounds):
        fig.draw_without_rendering()  # runs the layout engine, places every text
        box = fig.get_tightbbox()  # in inches
        w, h = fig.get_size_inches()
        grow_w = max(0.0, pad - box.x0) + max(0.0, box.x1 + pad - w)
        grow_h = max(0.0, pad - box.y0) + max(0.0, box.y1 + pad - h)
        if grow_w < 0.01 and grow_h < 0.01:
            break
        fig.set_size_inches(w + grow_w, h + grow_h)
    return fig
