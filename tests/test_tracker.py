"""The tracker: run-directory files always, W&B offline files by default, never a crash."""

from __future__ import annotations

import json
import os
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


def _jsonl(d):
    return [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]


def test_every_gate_reaches_wandb_on_its_own_axis():
    """Each gate restarts its epochs at 1: on W&B's implicit step only 3 of 5 gates arrived."""
    res = run("perceptron-gates", explain=False)
    got = read_run(res.dir)
    local = _jsonl(res.dir)
    for gate in ("AND", "OR", "NAND", "NOR", "XOR"):
        key, axis = f"{gate}/mistakes", f"{gate}/epoch"
        mine = [r for r in local if key in r]
        assert mine and all(r["axis"] == axis and r[axis] == r["step"] for r in mine)
        theirs = [h for h in got["history"] if key in h]
        assert [h[key] for h in theirs] == [r[key] for r in mine], gate
        assert [h[axis] for h in theirs] == [r["step"] for r in mine], gate
        assert got["metrics"][key] == axis  # declared: the gate's epoch is its x-axis


def test_two_named_fits_both_reach_wandb(monkeypatch):
    from torch import nn

    from labs import datasets, models
    from supervised.xor import XorMLP

    def two_fits(self, cfg, run):
        data = datasets.logic_gate("XOR")
        for name in ("first", "second"):
            run.fit(models.mlp(2, [4], 2), data, loss=nn.CrossEntropyLoss(), epochs=3,
                    name=name)
        return {}

    monkeypatch.setattr(XorMLP, "run", two_fits)
    res = run("xor-mlp", explain=False)
    got = read_run(res.dir)
    for name in ("first", "second"):
        key = f"{name}/train_loss"
        local = [r[key] for r in _jsonl(res.dir) if key in r]
        assert len(local) == 3
        assert [h[key] for h in got["history"] if key in h] == pytest.approx(local)


def test_tracker_log_axis_rows_and_declarations(tmp_path):
    t = Tracker(tmp_path, wandb_mode="disabled")

    class Recorder:
        def __init__(self):
            self.calls = []

        def define_metric(self, name, step_metric=None):
            self.calls.append(("define", name, step_metric))

        def log(self, row, *args, **kwargs):
            assert not args and "step" not in kwargs  # never W&B's implicit step
            self.calls.append(("log", row))

        def finish(self, *a):
            pass

    w = t._wandb = Recorder()
    t.log({"loss": 1.0, "global_step": 10}, step=1, axis="epoch")
    t.log({"loss": 0.5, "global_step": 20}, step=2, axis="epoch")
    t.log({"reward": 3.0}, step=500, axis="env_step")
    t.finish()
    assert w.calls == [
        ("define", "epoch", None), ("define", "loss", "epoch"),
        ("define", "global_step", "epoch"),
        ("log", {"epoch": 1, "loss": 1.0, "global_step": 10}),
        ("log", {"epoch": 2, "loss": 0.5, "global_step": 20}),
        ("define", "env_step", None), ("define", "reward", "env_step"),
        ("log", {"env_step": 500, "reward": 3.0})]
    rows = _jsonl(tmp_path)
    assert [(r["step"], r["axis"], r[r["axis"]]) for r in rows] == [
        (1, "epoch", 1), (2, "epoch", 2), (500, "env_step", 500)]


def test_logs_made_before_wandb_is_up_arrive_in_order(monkeypatch, tmp_path):
    import threading

    import wandb

    release = threading.Event()
    real_init = wandb.init

    def slow_init(*a, **k):
        release.wait(30)
        return real_init(*a, **k)

    monkeypatch.setattr(wandb, "init", slow_init)
    t = Tracker(tmp_path, wandb_mode="offline", run_id="early1")
    for i in range(5):
        t.log({"x": float(i)}, step=i + 1, axis="epoch")  # returns at once: W&B is not up
    t.summary({"final": 4.0})
    release.set()
    t.finish()
    got = read_run(tmp_path)
    assert [h["x"] for h in got["history"] if "x" in h] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert got["summary"]["final"] == 4.0


def test_tracker_leaves_the_environment_alone(monkeypatch, tmp_path):
    """It used to set WANDB_CACHE_DIR (to the first run's directory) and WANDB_SILENT for
    the whole process: a notebook's second run wrote into the first run's directory."""
    monkeypatch.delenv("WANDB_CACHE_DIR", raising=False)
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # W&B's own default
    before = dict(os.environ)
    first = run("xor-mlp", epochs=2, explain=False)
    files = _tree(first.dir)
    second = run("xor-mlp", epochs=2, explain=False)
    assert dict(os.environ) == before
    assert _tree(first.dir) == files
    assert read_run(second.dir)["config"]["epochs"] == 2


def _tree(d):
    """The files in `d` and their sizes (not W&B's symlink to its service log elsewhere)."""
    return {str(p.relative_to(d)): p.stat().st_size for p in d.rglob("*")
            if p.is_file() and not p.is_symlink()}


def test_online_start_failure_falls_back_to_offline_with_one_warning(monkeypatch):
    """No network: a fake key and a refused address. The run goes on, W&B goes offline."""
    from labs import tracker

    monkeypatch.setattr(tracker, "INIT_TIMEOUT", 2.0)
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run("xor-mlp", epochs=3, explain=False, track="online")
    mine = [w for w in caught if issubclass(w.category, tracker.TrackingWarning)]
    assert len(mine) == 1 and "offline" in str(mine[0].message)
    assert "wandb sync" in str(mine[0].message)
    assert json.loads((res.dir / "summary.json").read_text())["status"] == "completed"
    got = read_run(res.dir)  # the offline files, ready for `wandb sync`
    assert len([h for h in got["history"] if "train_loss" in h]) == 3
    assert got["summary"]["acc"] == pytest.approx(res.metrics["acc"])


def test_wandb_service_noise_stays_out_of_the_terminal(monkeypatch, tmp_path, capfd):
    """With W&B's cache dir unwritable its service printed ~18 log lines to stderr."""
    import wandb

    wandb.teardown()  # a fresh service, started by this run
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(blocker / "cache"))
    res = run("xor-mlp", epochs=2, explain=False)
    assert read_run(res.dir)["config"]["epochs"] == 2
    out, err = capfd.readouterr()
    assert "INFO" not in err and "ERROR" not in err and "wandb" not in err.lower()


def test_an_animation_reaches_wandb_as_video_media(tmp_path):
    """`Run.video` logs a GIF the lab wrote as W&B media (it used to be only a saved file)."""
    from PIL import Image

    from labs.tracker import Tracker

    gif = tmp_path / "episode.gif"
    frames = [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=40)
    tracker = Tracker(tmp_path, wandb_mode="offline", run_id="videotest1")
    tracker.log_video("figures/episode", gif, fps=25)
    tracker.finish()
    rows = [h for h in read_run(tmp_path)["history"] if "figures/episode/_type" in h]
    assert rows and rows[0]["figures/episode/_type"] == "video-file"
    assert rows[0]["figures/episode/path"].endswith(".gif")
