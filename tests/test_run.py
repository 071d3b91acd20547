"""Run directories, `lab runs`, repeatability and the one-line user errors of `lab run`."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from labs import run
from labs.errors import LabError


def test_run_directory_contents(runs_dir):
    res = run("digits-mlp", epochs=2, explain=False, track=False)
    d = res.dir
    assert d.parent == runs_dir / "digits-mlp" and d.name == res.run_id
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert cfg["lab"] == "digits-mlp" and cfg["seed"] == 0 and cfg["device"] == "cpu"
    assert cfg["config"]["epochs"] == 2 and cfg["config"]["hidden"] == [64]
    assert {"python", "torch", "lab-framework"} <= set(cfg["versions"])
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == [1, 2]
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["headline"] == "test_acc"
    assert summary["metrics"]["test_acc"] == pytest.approx(res.metrics["test_acc"])
    assert 0.5 < summary["metrics"]["test_acc"] <= 1.0
    assert {p.name for p in (d / "checkpoints").iterdir()} == {"last.pt", "best.pt", "model.pt"}
    assert {p.name for p in (d / "figures").iterdir()} == {
        "curves.png", "confusion.png", "misclassified.png", "per_class.png"}
    assert isinstance(res.model, torch.nn.Module)


def test_seeded_runs_repeat_and_never_overwrite():
    a = run("xor-mlp", epochs=20, seed=3, explain=False, track=False)
    b = run("xor-mlp", epochs=20, seed=3, explain=False, track=False)
    c = run("xor-mlp", epochs=20, seed=4, explain=False, track=False)
    assert a.dir != b.dir and a.dir.exists() and b.dir.exists()
    assert a.metrics == b.metrics
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    assert a.metrics != c.metrics


def test_lab_runs_lists_past_runs(cli):
    run("xor-mlp", epochs=5, explain=False, track=False)
    code, out, _ = cli("runs")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("xor-mlp"))
    assert "completed" in line and "acc=" in line


def test_cli_run_prints_dir_and_metrics(cli, runs_dir):
    code, out, err = cli("run", "xor-mlp", "--epochs", "5", "--no-track", "--no-explain",
                         "--seed", "1")
    assert code == 0
    assert "finished" in out and "acc" in out
    (d,) = (runs_dir / "xor-mlp").iterdir()
    assert str(d.name) in out
    assert yaml.safe_load((d / "config.yaml").read_text())["command"].startswith("lab run")


@pytest.mark.parametrize("argv, fragment", [
    (["run", "digit-mlp"], "did you mean: digits-mlp"),
    (["run", "xor-mlp", "--set", "hiden=3"], "unknown config key 'hiden'"),
    (["run", "xor-mlp", "--set", "epochs=many"], "is not int"),
    (["run", "xor-mlp", "--device", "tpu"], "choose one of auto, cpu, cuda, mps"),
    (["run", "xor-mlp", "--device", "cuda"] if not torch.cuda.is_available()
     else ["run", "xor-mlp", "--device", "mps"], "available here"),
    (["run", "xor-mlp", "--resume", "20990101-000000-dead"], "no run '20990101-000000-dead'"),
    (["run", "xor-mlp", "--config", "nope.yaml"], "cannot read config file"),
    (["info", "xor"], "did you mean"),
    (["explain", "nothing-here"], "no run 'nothing-here'"),
])
def test_user_errors_exit_2_with_one_line(cli, argv, fragment, runs_dir):
    code, out, err = cli(*argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert fragment in err.lower() or fragment in err
    # a refused command makes no run directory
    made = list(runs_dir.glob("*/*")) if runs_dir.exists() else []
    assert made == []


def test_run_api_rejects_bad_track():
    with pytest.raises(LabError):
        run("xor-mlp", track="sometimes")


def test_failed_run_is_marked_and_kept(runs_dir, monkeypatch):
    from supervised.xor import XorMLP

    def boom(self, cfg, run):
        raise RuntimeError("bug in the lab")

    monkeypatch.setattr(XorMLP, "run", boom)
    with pytest.raises(RuntimeError):
        run("xor-mlp", track=False)
    (d,) = (runs_dir / "xor-mlp").iterdir()
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "failed" and "bug in the lab" in summary["error"]


def test_run_function_survives_importing_the_run_context_module():
    """`labs/run.py` used to shadow `labs.run` (the function) once a run had imported it."""
    import subprocess
    import sys

    code = ("import importlib, labs; importlib.import_module('labs.context'); "
            "from labs import run; assert callable(run) and run.__module__ == 'labs.runner'")
    subprocess.run([sys.executable, "-c", code], check=True)
