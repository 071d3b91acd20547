"""labs.crossval: k-fold cross-validation as one named run.fit per fold."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from labs import ConfigError, checkpoint, crossval
from labs.context import Run


@pytest.fixture(autouse=True)
def one_thread():
    """These tests build a Run directly (not through `labs.run`, which picks the thread count):
    on a busy 2-core machine two torch threads spin-wait, 30x slower for these tiny models."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Tracker:
    def __init__(self):
        self.tables = {}

    def log(self, metrics, step=None, *, axis="step"):
        pass

    def log_table(self, name, columns, rows):
        self.tables[name] = (list(columns), [list(r) for r in rows])


def _run(tmp_path):
    cfg = SimpleNamespace(epochs=15, batch_size=16, lr=0.05, seed=0)
    return Run("t", "r1", tmp_path, cfg, torch.device("cpu"), Tracker(), progress=False)


def _blobs(n=40):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (n, 2)), rng.normal(2, 1, (2 * n, 2))]) + 100
    return x.astype("f4"), np.repeat([0, 1], [n, 2 * n])


def test_folds_cover_every_sample_once_and_keep_class_proportions():
    _, y = _blobs()
    parts = crossval.folds(y, k=4, seed=0)
    tests = np.concatenate([te for _, te in parts])
    assert sorted(tests) == list(range(len(y)))
    for tr, te in parts:
        assert not set(tr) & set(te)
        assert (y[te] == 0).sum() == 10 and (y[te] == 1).sum() == 20  # 1:2, like the whole
    with pytest.raises(ConfigError, match="k >= 2"):
        crossval.folds(y, k=1)


def test_fold_inputs_are_standardized_with_the_training_fold_only():
    x, y = _blobs()
    tr, te = crossval.folds(y, k=4)[0]
    data = crossval.fold_dataset(x, y, tr, te)
    assert torch.allclose(data.train.x.mean(0), torch.zeros(2), atol=1e-4)
    assert np.allclose(data.extras["mean"], x[tr].mean(0))
    assert data.test.y.tolist() == y[te].tolist()


def test_cross_validate_fits_each_fold_under_its_name(tmp_path):
    x, y = _blobs()
    run = _run(tmp_path)
    cv = crossval.cross_validate(run, lambda: nn.Linear(2, 2), x, y, k=5,
                                 loss=nn.CrossEntropyLoss())
    assert len(cv.folds) == 5 and cv.sizes == [24] * 5
    assert cv.mean("acc") > 0.9 and 0.0 <= cv.std("acc") < 0.1
    assert cv.std("acc") == pytest.approx(np.std([f["acc"] for f in cv.folds]))
    assert set(cv.summary()) == {"cv_acc_mean", "cv_acc_std", "cv_loss_mean", "cv_loss_std"}
    checkpoint.wait_pending()  # the fits' last writes go to the background writer
    for i in range(5):  # each fold trained and checkpointed under its own name
        assert (tmp_path / "checkpoints" / f"fold{i}" / "last.pt").is_file()
    assert run.models == {}  # fold models are not kept for lab eval unless asked
    rows = crossval.log_table(run, "folds", cv)
    cols, logged = run.tracker.tables["folds"]
    assert cols[:2] == ["fold", "n_test"] and [r[0] for r in logged][-2:] == ["mean", "std"]
    assert rows[-2][cols.index("acc")] == pytest.approx(cv.mean("acc"))


def test_cross_validate_regression_uses_plain_kfold(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3)).astype("f4")
    y = (x @ np.array([1.0, -2.0, 0.5])).astype("f4")
    model = lambda: nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))  # noqa: E731
    cv = crossval.cross_validate(_run(tmp_path), model, x, y, k=3, classification=False,
                                 loss=nn.MSELoss(), metrics=(), keep=True)
    assert list(cv.folds[0]) == ["loss"] and cv.mean("loss") < 1.0
