"""The shared "train N variants and compare them" helper, and the course lessons."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from labs import checkpoint, datasets, variants
from labs.context import Run
from labs.lab import LESSONS


def _blobs():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (60, 2)), rng.normal(2, 1, (60, 2))]).astype("f4")
    y = np.repeat([0, 1], 60)
    return datasets.from_arrays(x, y, test_size=0.25, val_size=0.2, seed=0)


class Tracker:
    def __init__(self):
        self.tables, self.figures = {}, []

    def log(self, metrics, step=None, *, axis="step"):
        pass

    def log_table(self, name, columns, rows):
        self.tables[name] = (list(columns), [list(r) for r in rows])

    def log_figure(self, name, path):
        self.figures.append(name)

    def config(self, values):  # Run.record's W&B side
        pass


def _run(tmp_path, epochs=6):
    cfg = SimpleNamespace(epochs=epochs, batch_size=16, lr=0.05, seed=0)
    (tmp_path / "figures").mkdir()
    return Run("t", "r1", tmp_path, cfg, torch.device("cpu"), Tracker(), progress=False)


def test_fit_all_trains_each_variant_under_its_own_name(tmp_path):
    run = _run(tmp_path)
    results = variants.fit_all(
        run, {"linear": nn.Linear(2, 2),
              "mlp": lambda: nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)),
              "short": variants.Variant(nn.Linear(2, 2), fit={"epochs": 2})},
        _blobs(), loss=nn.CrossEntropyLoss())
    assert list(results) == ["linear", "mlp", "short"]
    assert len(results["short"].history.epochs) == 2  # its own fit arguments win
    assert len(results["mlp"].history.epochs) == 6
    assert results["linear"].params == 6 and results["mlp"].params == 42
    assert results["linear"].test["acc"] > 0.9  # two well-separated blobs
    assert set(run.models) == {"linear", "mlp", "short"}  # each reloadable by name
    checkpoint.wait_pending()  # the fits' last writes go to the background writer
    for name in results:  # and checkpointed under its name
        assert (tmp_path / "checkpoints" / name / "last.pt").is_file()
    rows = variants.log_table(run, "comparison", results)
    cols, logged = run.tracker.tables["comparison"]
    assert cols[0] == "variant" and "test_acc" in cols and "s_per_epoch" in cols
    assert [r[0] for r in logged] == ["linear", "mlp", "short"] and logged == rows
    acc = cols.index("test_acc")
    assert rows[0][acc] == results["linear"].test["acc"]
    run.figure("val_loss", variants.curves(results, "val_loss"))
    run.figure("acc", variants.bars({n: r.test["acc"] for n, r in results.items()}, "acc"))
    assert (tmp_path / "figures" / "val_loss.png").is_file()


def test_a_variant_without_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match="variant 'a' has no data"):
        variants.fit_all(_run(tmp_path), {"a": nn.Linear(2, 2)})


def test_every_builtin_lab_names_a_known_lesson(cli):
    from labs.registry import discover

    specs = [s for s in discover().select() if s.builtin]
    assert specs
    for spec in specs:
        lesson = spec.load().lesson
        assert lesson in LESSONS, f"{spec.name}: lesson '{lesson}' is not in labs.lab.LESSONS"
    code, out, _ = cli("info", "digits-cnn")
    assert code == 0 and "lesson:   Convolutional networks" in out


def test_after_fit_all_the_runs_data_is_the_common_data(tmp_path):
    # the run's explanations use run.data: not the last variant's inputs of its own
    run = _run(tmp_path, epochs=1)
    common, other = _blobs(), _blobs()
    variants.fit_all(run, {"a": nn.Linear(2, 2),
                           "own": variants.Variant(nn.Linear(2, 2), data=other)},
                     common, loss=nn.CrossEntropyLoss())
    assert run.data is common
    assert run.recorded == {variants.OWN_DATA: {"own": True}}
