"""Shared figures: nothing drawn runs off the canvas, tick labels never overlap, and the one
decision-surface helper draws the model's own probabilities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from explain.base import Explanation
from explain.figures import SLACK
from explain.tabular import TabularExplainer
from labs import plots

IRIS = ["setosa", "versicolor", "virginica"]
LONG = ["a class with a long name", "another rather long class name", "short"]


def renderer(fig):
    return FigureCanvasAgg(fig).get_renderer()


def assert_on_canvas(fig, tmp_path):
    """Everything drawn, as saved to a PNG, lies inside the figure."""
    fig.savefig(tmp_path / "fig.png", dpi=100)  # runs the layout, as explain/runner.py does
    assert (tmp_path / "fig.png").stat().st_size > 0
    box = fig.get_tightbbox(renderer(fig))  # inches
    w, h = fig.get_size_inches()
    tol = SLACK  # the layout engine's pixel of rounding
    assert box.x0 >= -tol and box.y0 >= -tol and box.x1 <= w + tol and box.y1 <= h + tol, (
        box.bounds, (w, h))


def assert_apart(texts, r):
    boxes = [t.get_window_extent(r) for t in texts if t.get_text()]
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        assert not a.overlaps(b), (texts[i].get_text(), texts[j].get_text())


@pytest.mark.parametrize("names", [IRIS, LONG, None], ids=["iris", "long", "digits"])
def test_confusion_labels_are_apart_and_on_canvas(names, tmp_path):
    n = 10 if names is None else len(names)
    y = np.arange(n).repeat(3)
    fig = plots.confusion(y, np.roll(y, 1), names)
    assert_on_canvas(fig, tmp_path)
    ax = fig.axes[0]
    r = renderer(fig)
    xt, yt = ax.get_xticklabels(), ax.get_yticklabels()
    assert [t.get_text() for t in xt] == (names or [str(i) for i in range(10)])
    assert_apart(xt, r)
    assert_apart(yt, r)
    assert_apart([*xt, ax.xaxis.label], r)  # names never run into "predicted"
    assert_apart([*yt, ax.yaxis.label], r)


def test_lime_bar_chart_fits_long_feature_names(tmp_path):
    names = ["mean concave points error", "worst fractal dimension of the cell nuclei", "x"]
    e = Explanation(
        index=0, kind="tabular", label=1, predicted=1, explained_class=1, class_name="benign",
        probability=0.9, weights=dict(zip(names, [0.3, -0.2, 0.1], strict=True)), intercept=0.0,
        score=0.5, local_pred=0.5, deletion_k=1, deletion_top=0.1, deletion_random=0.0,
        deletion_features=["x"],
        arrays={"conditions": np.array([f"{n}=0.0123" for n in names], dtype=object)})
    for discretize in (False, True):
        fig = TabularExplainer(discretize_continuous=discretize).figure(None, e)
        assert_on_canvas(fig, tmp_path)
        ax = fig.axes[0]
        assert_apart([*ax.get_yticklabels(), ax.xaxis.label, ax.title], renderer(fig))


def test_curves_and_image_grid_fit(tmp_path):
    class History:
        epochs = [{"epoch": i, "train_loss": 1 / i, "val_loss": 1.2 / i, "train_acc": 0.1 * i}
                  for i in range(1, 6)]
    assert_on_canvas(plots.curves(History(), title="a title"), tmp_path)
    grid = plots.image_grid([np.eye(8)] * 5, ["a long title for an image"] * 5, cols=3,
                            title="grid")
    assert_on_canvas(grid, tmp_path)
    assert_apart([ax.title for ax in grid.axes], renderer(grid))


class FakeTrainer:
    """A Trainer's predict: logits of a model whose class 1 wins where x1 > 0.3."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        z = 8 * (x[:, 0] - 0.3)
        return torch.stack([torch.zeros_like(z), z], dim=1)


@pytest.mark.parametrize("model", [
    FakeTrainer(),
    lambda g: 1 / (1 + np.exp(-8 * (g[:, 0] - 0.3))),  # P(target) only
    lambda g: np.stack([1 - 1 / (1 + np.exp(-8 * (g[:, 0] - 0.3))),
                        1 / (1 + np.exp(-8 * (g[:, 0] - 0.3)))], axis=1),
], ids=["trainer", "predict-fn-1d", "predict-fn-2d"])
def test_decision_surface_draws_the_models_probabilities(model, tmp_path):
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    fig = plots.decision_surface(model, x, torch.tensor([0, 0, 1, 1]), margin=0.25,
                                 label="P(right)", title="surface")
    assert_on_canvas(fig, tmp_path)
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((-0.25, 1.25))
    # the drawn 0.5 contour is the model's border, x1 = 0.3
    (line,) = [c for c in ax.collections if list(getattr(c, "levels", [])) == [0.5]]
    border = np.concatenate([p.vertices for p in line.get_paths()])
    assert border[:, 0] == pytest.approx(0.3, abs=0.02)
    assert fig.axes[1].get_ylabel() == "P(right)"  # the colour bar
    points = ax.collections[-1]
    assert points.get_array().tolist() == [0, 0, 1, 1]  # coloured by class


def test_decision_surface_is_shared_by_xor_and_the_example_plugin():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in (root / "supervised" / "xor.py", root / "examples/plugin/lab_moons/lab.py"):
        source = path.read_text()
        assert "plots.decision_surface(" in source
        assert not [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
