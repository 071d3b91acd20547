"""The tracker: run-directory files always, W&B offline files by default, never a crash."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings

import pytest
from wandb_records import read_run

from labs import Callback, Tracker, checkpoint, run
from labs.wandb_sidecar import Sink


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


class FakeWandb:
    """Stands in for the wandb module inside a `Sink` (the sidecar's W&B side)."""

    def __init__(self, run=None, init_error=None):
        self._run, self._error = run, init_error

    def Settings(self, **kw):  # noqa: N802 - wandb's name
        return kw

    def init(self, **kw):
        if self._error:
            raise self._error
        return self._run

    def teardown(self):
        pass


def test_wandb_failure_is_a_warning_not_a_crash():
    warned = []
    sink = Sink(warned.append, FakeWandb(init_error=ConnectionError("no route to host")))
    sink.start("offline", {"dir": "/x"}, timeout=1)
    sink.apply({"op": "log", "row": {"a": 1.0}, "axis": None})  # ignored, no second warning
    sink.apply({"op": "finish"})
    assert len(warned) == 1 and re.match("W&B start failed.*no route to host", warned[0])


def test_a_failed_online_start_goes_offline_once():
    class Run:
        def finish(self, code=0):
            pass

    class OnlineFails(FakeWandb):
        def init(self, **kw):
            if kw["mode"] == "online":
                raise TimeoutError("timed out")
            return Run()

    warned = []
    sink = Sink(warned.append, OnlineFails())
    sink.start("online", {"dir": "/r"}, timeout=1)
    assert sink.run is not None
    assert len(warned) == 1 and "logging offline" in warned[0]
    assert "wandb sync /r/wandb/offline-run-*" in warned[0]


def test_wandb_log_failure_drops_wandb_once():
    class Flaky:
        def define_metric(self, *a, **k):
            pass

        def log(self, *a, **k):
            raise RuntimeError("socket closed")

    warned = []
    sink = Sink(warned.append, FakeWandb(run=Flaky()))
    sink.start("offline", {}, timeout=1)
    for i in range(2):
        sink.apply({"op": "log", "row": {"epoch": i, "a": 1.0}, "axis": "epoch"})
    assert len(warned) == 1 and "socket closed" in warned[0]


def test_a_dead_sidecar_never_takes_the_run_down(tmp_path):
    t = Tracker(tmp_path, wandb_mode="offline", run_id="deadside1")
    t._sidecar._proc.kill()
    t._sidecar._proc.wait()
    for i in range(50):  # the pipe is broken: these go to metrics.jsonl only
        t.log({"a": float(i)}, step=i, axis="epoch")
    t.finish()
    assert len(_jsonl(tmp_path)) == 50


def test_the_lab_process_never_imports_wandb(tmp_path):
    """W&B lives in the sidecar: the lab's process stays free of its import and its GIL."""
    code = ("import sys; from labs import run; "
            f"r = run('xor-mlp', epochs=2, explain=False, runs_dir={str(tmp_path)!r}); "
            "assert r.dir.joinpath('wandb').is_dir(); "
            "print('wandb' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
    (d,) = (tmp_path / "xor-mlp").iterdir()
    assert read_run(d)["config"]["epochs"] == 2


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

    class Pipe:  # the tracker's side of the sidecar, straight into a Sink
        def __init__(self, sink):
            self.sink = sink

        def send(self, cmd):  # one command, or a flush's list of log commands
            for c in cmd if isinstance(cmd, list) else [cmd]:
                self.sink.apply(json.loads(json.dumps(c)))  # what crosses the pipe is JSON

        def close(self, exit_code):
            self.sink.apply({"op": "finish", "exit_code": exit_code})
            return []

    w = Recorder()
    sink = Sink(lambda m: None, FakeWandb(run=w))
    sink.start("offline", {}, timeout=1)
    t = Tracker(tmp_path, wandb_mode="disabled")
    t._sidecar = Pipe(sink)
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


def test_logs_made_before_wandb_is_up_arrive_in_order(tmp_path):
    t = Tracker(tmp_path, wandb_mode="offline", run_id="early1")
    for i in range(5):
        t.log({"x": float(i)}, step=i + 1, axis="epoch")  # returns at once: W&B is not up
    t.summary({"final": 4.0})
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


def test_what_a_lab_decides_while_running_joins_its_config(monkeypatch):
    """`run.record`: config.yaml's `recorded:` and the W&B run's config (frozen layers, each
    parameter group's learning rate); the config proper stays as it was."""
    from supervised.xor import XorMLP

    def decides(self, cfg, run):
        run.record({"frozen_layers": ["body.0"], "lr_groups": {"head": 0.01}})
        run.record({"warmup": 2})
        return {}

    monkeypatch.setattr(XorMLP, "run", decides)
    res = run("xor-mlp", explain=False)
    import yaml

    saved = yaml.safe_load((res.dir / "config.yaml").read_text())
    assert saved["recorded"] == {"frozen_layers": ["body.0"], "lr_groups": {"head": 0.01},
                                 "warmup": 2}
    assert "frozen_layers" not in saved["config"]
    got = read_run(res.dir)["config"]
    assert got["frozen_layers"] == ["body.0"] and got["lr_groups"] == {"head": 0.01}
    assert got["warmup"] == 2 and got["lab"] == "xor-mlp"


def test_metrics_rows_are_flushed_at_most_every_second_and_on_flush(tmp_path, monkeypatch):
    import labs.tracker as tracker_mod

    monkeypatch.setattr(tracker_mod, "FLUSH_EVERY", 3600.0)  # only an explicit flush writes
    t = Tracker(tmp_path, wandb_mode="disabled")
    t.log({"loss": 1.0}, step=1, axis="epoch")
    assert (tmp_path / "metrics.jsonl").read_text() == ""  # buffered: no write per epoch
    t.flush()
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == 1.0
    monkeypatch.setattr(tracker_mod, "FLUSH_EVERY", 0.0)  # due: written as it is logged
    t.log({"loss": 0.5}, step=2, axis="epoch")
    assert (tmp_path / "metrics.jsonl").read_text().count("loss") == 2
    t.finish()


def test_a_checkpoint_write_flushes_the_rows_of_its_epochs_first(tmp_path, monkeypatch):
    import labs.tracker as tracker_mod

    monkeypatch.setattr(tracker_mod, "FLUSH_EVERY", 3600.0)  # no timed flush: only the write's
    seen = []

    class Spy(Callback):  # after the checkpoint's epoch start: last.pt, and the rows on disk
        def on_epoch_start(self, trainer, epoch):
            (d,) = (tmp_path / "xor-mlp").iterdir()
            if (ck := d / "checkpoints" / "last.pt").exists():
                rows = (d / "metrics.jsonl").read_text().count("train_loss")
                seen.append((checkpoint.load(ck)["epoch"], rows))

    run("xor-mlp", epochs=4, checkpoint_every="1 epochs", explain=False, track=False,
        runs_dir=tmp_path, callbacks=[Spy()])
    assert seen == [(1, 1), (2, 2), (3, 3)]  # every epoch last.pt holds has its row on disk


def test_waiting_rows_reach_wandb_in_order_and_in_one_write(tmp_path, monkeypatch):
    import labs.tracker as tracker_mod

    monkeypatch.setattr(tracker_mod, "FLUSH_EVERY", 3600.0)
    sent = []

    class Pipe:  # the tracker's side of the sidecar: what it hands over, in order
        def send(self, cmd):
            sent.append(cmd)

        def close(self, exit_code):
            return []

    t = Tracker(tmp_path, wandb_mode="disabled")
    t._sidecar = Pipe()
    t.log({"loss": 1.0}, step=1, axis="epoch")
    t.log({"loss": 0.5}, step=2, axis="epoch")
    assert sent == []  # waiting for the next flush: no wake-up of the writer per epoch
    t.log_table("t", ["a"], [[1]])  # another command: the rows before it go first
    t.log({"loss": 0.25}, step=3, axis="epoch")
    t.finish()
    # (the sidecar's close sends "finish" itself, after everything handed over)
    assert [c["op"] if isinstance(c, dict) else [x["row"]["loss"] for x in c]
            for c in sent] == [[1.0, 0.5], "table", [0.25]]
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [1.0, 0.5, 0.25]
