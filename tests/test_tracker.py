"""The tracker: run-directory files always, W&B offline files by default, never a crash."""

from __future__ import annotations

import json
import warnings

import pytest
from wandb_records import read_run

from labs import Tracker, run


def test_offline_wandb_run_holds_config_metrics_and_summary():
    # W&B offline is the default
    res = run("xor-mlp", epochs=4, explain_samples=1, explain_num_samples=100)
    (wandb_dir,) = res.dir.glob("wandb/offline-run-*")
    got = read_run(res.dir)
    assert got["config"]["lab"] == "xor-mlp" and got["config"]["epochs"] == 4
    assert got["config"]["hidden"] == 4
    losses = [h["train_loss"] for h in got["history"] if "train_loss" in h]
    assert len(losses) == 4
    local = [json.loads(x) for x in (res.dir / "metrics.jsonl").read_text().splitlines()]
    assert losses == pytest.approx([r["train_loss"] for r in local if "train_loss" in r])
    assert got["summary"]["acc"] == pytest.approx(res.metrics["acc"])
    # figures went to W&B too
    keys = {k for h in got["history"] for k in h}
    assert any(k.startswith("figures/curves/") for k in keys)
    # explanations: the image and the wandb.Table of weights and fidelity
    assert any(k.startswith("explain/sample_0/") for k in keys)
    assert any(k.startswith("explain_table/") for k in keys)
    assert got["summary"]["explain_r2"] == pytest.approx(res.metrics["explain_r2"])


def test_no_track_writes_no_wandb_files(cli, runs_dir):
    code, _, _ = cli("run", "xor-mlp", "--epochs", "2", "--no-track", "--no-explain")
    assert code == 0
    (d,) = (runs_dir / "xor-mlp").iterdir()
    assert not (d / "wandb").exists() and (d / "metrics.jsonl").stat().st_size > 0


def test_wandb_failure_is_a_warning_not_a_crash(monkeypatch, tmp_path):
    import wandb

    def broken_init(*a, **k):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(wandb, "init", broken_init)
    with pytest.warns(RuntimeWarning, match="W&B start failed.*no route to host"):
        res = run("xor-mlp", epochs=3, explain=False, track="online")
    assert json.loads((res.dir / "summary.json").read_text())["status"] == "completed"
    assert len((res.dir / "metrics.jsonl").read_text().splitlines()) >= 3


def test_wandb_log_failure_drops_wandb_once(tmp_path):
    t = Tracker(tmp_path, wandb_mode="disabled")

    class Flaky:
        def define_metric(self, *a, **k):
            pass

        def log(self, *a, **k):
            raise RuntimeError("socket closed")

    t._wandb = Flaky()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.log({"a": 1.0}, step=1)
        t.log({"a": 2.0}, step=2)
    assert len([w for w in caught if "socket closed" in str(w.message)]) == 1
    t.finish()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["a"] for r in rows] == [1.0, 2.0]
