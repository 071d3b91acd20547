"""hparam-search: trials are ordinary runs of another lab, listed in the parent's table."""

from __future__ import annotations

import json

import pytest
import yaml

from labs import ConfigError, run
from supervised.hparam_search import Config, trials


def test_hparam_search_smoke(tmp_path, cli):
    res = run("hparam-search", track=False, runs_dir=tmp_path, progress=False, trial_epochs=1,
              grid_lr=[1e-3], grid_batch_size=[64], grid_width=[8], random_trials=1)
    assert res.metrics["trials"] == 2.0
    table = json.loads((res.dir / "trials.table.json").read_text())
    cols = table["columns"]
    assert cols == ["search", "lr", "batch_size", "width", "val_acc", "test_acc", "seconds",
                    "run"]
    assert [r[0] for r in table["rows"]] == ["grid", "random"]
    for row in table["rows"]:  # each trial is a completed digits-mlp run under the runs root
        child = tmp_path / row[cols.index("run")]
        assert child.parent.name == "digits-mlp"
        summary = json.loads((child / "summary.json").read_text())
        assert summary["status"] == "completed"
        config = (child / "config.yaml").read_text()
        assert f"hidden:\n  - {row[cols.index('width')]}" in config and "epochs: 1" in config
        assert 0.0 <= row[cols.index("val_acc")] <= 1.0
        # the trial names the search it belongs to, and `lab runs` says so
        meta = yaml.safe_load(config)
        assert meta["recorded"]["parent"] == {"lab": "hparam-search", "run_id": res.run_id}
    code, out, _ = cli("runs", "digits-mlp", "--runs-dir", str(tmp_path))
    trials_listed = [ln for ln in out.splitlines() if ln.startswith("digits-mlp")]
    assert code == 0 and len(trials_listed) == 2
    assert all(f"(part of hparam-search/{res.run_id})" in ln for ln in trials_listed)
    code, out, _ = cli("runs", "hparam-search", "--runs-dir", str(tmp_path))
    assert "part of" not in out  # the search itself is part of nothing
    assert (res.dir / "figures" / "search.png").is_file()
    assert res.metrics["best_val_acc"] == max(r[cols.index("val_acc")] for r in table["rows"])


def test_random_search_is_seeded_and_in_range():
    cfg = Config(search="random", random_trials=20, lr_range=[1e-4, 1e-2],
                 width_range=[8, 64], batch_sizes=[16, 128])
    drawn = trials(cfg)
    assert drawn == trials(cfg) and len(drawn) == 20  # same seed, same trials
    assert all(1e-4 <= t["lr"] <= 1e-2 and 8 <= t["width"] <= 64 for t in drawn)
    assert {t["batch_size"] for t in drawn} == {16, 128}
    assert len(trials(Config(search="grid"))) == 8  # 2 x 2 x 2


def test_a_reversed_range_is_refused():
    with pytest.raises(ConfigError, match=r"lr_range must be \[low, high\]"):
        run("hparam-search", track=False, lr_range=[1e-2, 1e-4])


@pytest.mark.slow
def test_search_finds_a_good_setting_and_settings_matter(tmp_path):
    """Defaults (14 trials of 10 epochs): the best reaches ~0.96 validation accuracy, the worst
    (a small learning rate on a narrow net) stays far below."""
    res = run("hparam-search", track=False, runs_dir=tmp_path, progress=False)
    m = res.metrics
    assert m["trials"] == 14.0
    assert m["best_val_acc"] >= 0.94 and m["best_test_acc"] >= 0.93
    assert m["worst_val_acc"] < m["best_val_acc"] - 0.1
    assert len(list((tmp_path / "digits-mlp").iterdir())) == 14


def test_parent_must_be_a_run_or_a_result(tmp_path):
    with pytest.raises(TypeError, match="parent= takes the parent's Run or Result"):
        run("xor-mlp", track=False, runs_dir=tmp_path, parent="hparam-search/x", epochs=1)
    assert not (tmp_path / "xor-mlp").exists()  # refused before a run directory is made
