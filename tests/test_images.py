"""Shared image helpers: pixel shifts, the augmenting training step, the digits on a [0, 1]
scale, and the filter / feature-map / matrix figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labs import Trainer, augmented_step, datasets, images, plots

IMG = torch.arange(1, 10, dtype=torch.float32).reshape(1, 3, 3)  # 1..9, row by row


def test_shift_moves_pixels_and_fills_with_the_background():
    assert images.shift(IMG, 0, 1)[0].tolist() == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]
    assert images.shift(IMG, -1, 0)[0].tolist() == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]
    assert images.shift(IMG, 1, -1, fill=-1)[0].tolist() == [[-1, -1, -1], [2, 3, -1],
                                                             [5, 6, -1]]
    assert images.shift(IMG, 3, 0).eq(0).all()  # moved out entirely
    flat = IMG.reshape(1, 9)
    assert torch.equal(images.shift(flat, 0, 1, image_shape=(3, 3)),
                       images.shift(IMG, 0, 1).reshape(1, 9))  # flat in, flat out
    with pytest.raises(ValueError, match="pass image_shape"):
        images.shift(flat, 0, 1)


def test_random_shift_draws_one_of_the_allowed_shifts_per_image():
    torch.manual_seed(0)
    batch = IMG.repeat(500, 1, 1)
    out = images.random_shift(batch, 1)
    allowed = {tuple(images.shift(IMG, dy, dx)[0].flatten().tolist())
               for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    drawn = [tuple(o.flatten().tolist()) for o in out]
    assert set(drawn) == allowed  # all nine shifts occur in 500 draws, nothing else
    assert images.random_shift(batch, 0) is batch
    torch.manual_seed(0)
    assert torch.equal(images.random_shift(batch, 1), out)  # the global seed decides


def test_augmented_step_transforms_training_batches_only():
    class Record(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.seen = {True: [], False: []}

        def forward(self, x):
            self.seen[self.training].append(x.clone())
            return self.lin(x)

    model = Record()
    x, y = torch.ones(8, 2), torch.zeros(8, dtype=torch.long)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), nn.CrossEntropyLoss(),
                      epochs=1, step=augmented_step(lambda t: -t))
    trainer.fit([(x, y)], val=[(x, y)])
    assert all(t.eq(-1).all() for t in model.seen[True]) and model.seen[True]
    assert all(t.eq(1).all() for t in model.seen[False]) and model.seen[False]
    with pytest.raises(TypeError, match="no input to transform"):
        augmented_step(lambda t: t)(trainer, {"y": y})


def test_digits_on_a_unit_scale():
    data = datasets.digits(scale="unit", seed=0)
    x = data.train.x
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0 and data.pixel_max == 1.0
    raw = np.linspace(0, 1, 64)
    assert np.allclose(data.encode(raw), raw)  # a drawing scaled to [0, 1] is what it sees
    assert np.allclose(data.display(x[0].numpy()), x[0].numpy().reshape(8, 8))
    assert float(datasets.digits(scale=False).train.x.max()) == 16.0
    with pytest.raises(ValueError, match="True, False or 'unit'"):
        datasets.digits(scale="standard")


def test_filters_and_feature_maps_figures(tmp_path):
    w = torch.randn(12, 3, 3, 3)
    fig = plots.filters(w, cols=4)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 12
    first = axes[0].images[0]
    assert np.allclose(first.get_array(), w[0].mean(0).numpy())  # the mean over input channels
    lo, hi = first.get_clim()
    assert lo == -hi  # zero is white
    with pytest.raises(ValueError, match="out, in, kh, kw"):
        plots.filters(torch.zeros(3, 3))
    fig = plots.feature_maps(np.zeros((8, 8)), {"conv1": torch.rand(32, 8, 8),
                                                "conv2": torch.rand(3, 8, 8)}, per_layer=8)
    assert len([ax for ax in fig.axes if ax.images]) == 1 + 8 + 3
    fig.savefig(tmp_path / "maps.png")


def test_matrices_writes_every_value():
    fig = plots.matrices({"a": np.array([[1, -0.0], [2, 3]]), "b": np.array([[0.5]])})
    texts = sorted(t.get_text() for ax in fig.axes for t in ax.texts)
    assert texts == ["0", "0.5", "1", "2", "3"]  # -0 written as 0
