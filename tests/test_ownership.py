"""One owner per run directory, runs that died, SIGTERM, and the one-line errors around run
directories. The kill tests drive a real `lab run` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_helpers import KillAt

from labs import run

# `lab` as its console script runs it; at exit, say whether wandb was ever imported
LAB = ("import atexit, sys\n"
       "atexit.register(lambda: print('wandb imported:', 'wandb' in sys.modules, "
       "file=sys.stderr))\n"
       "from labs.cli import main\n"
       "sys.exit(main())\n")


def _lab(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LAB, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_epochs(runs_dir: Path, lab: str, n: int, proc: subprocess.Popen) -> Path:
    """The run directory, once `n` epochs are in its metrics.jsonl."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for m in runs_dir.glob(f"{lab}/*/metrics.jsonl"):
            if m.read_text().count("train_loss") >= n:
                return m.parent
        time.sleep(0.02)
    raise AssertionError("the run never reached its epochs")


def _status(d: Path) -> str:
    return json.loads((d / "summary.json").read_text())["status"]


def _interrupted(runs_dir: Path) -> Path:
    with pytest.raises(KeyboardInterrupt):
        run("xor-mlp", epochs=10, explain=False, track=False, callbacks=[KillAt(2)])
    return next((runs_dir / "xor-mlp").iterdir())


def test_second_owner_is_refused_with_the_live_process(runs_dir, cli):
    d = _interrupted(runs_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom labs.rundir import RunLock\n"
         "lock = RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(120)\n",
         str(d)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
        code, _, err = cli("run", "xor-mlp", "--resume", d.name, "--no-track")
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
        assert f"{holder.pid}@{socket.gethostname()}" in err and "in use" in err
        # nothing of the live run was touched
        assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == before
        code, out, _ = cli("runs")
        assert "interrupted" in out and "died" not in out
    finally:
        holder.kill()
        holder.wait()
    # the OS released the lock with the process: the run can be resumed now
    code, _, err = cli("run", "xor-mlp", "--resume", d.name, "--no-track", "--no-explain")
    assert code == 0, err
    assert _status(d) == "completed"


def test_sigkill_mid_training_shows_died_and_resume_finishes(runs_dir, cli):
    # 20 epochs: killed after 3 (polled every 20 ms; figures follow training), short resume
    proc = _lab("run", "digits-mlp", "--no-track", "--no-explain", "--set", "epochs=20")
    d = _wait_for_epochs(runs_dir, "digits-mlp", 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert _status(d) == "running"  # it had no chance to say otherwise
    code, out, _ = cli("runs")
    (line,) = [ln for ln in out.splitlines() if d.name in ln]
    assert " died " in line and f"lab run digits-mlp --resume {d.name}" in line

    code, out, err = cli("run", "digits-mlp", "--resume", d.name, "--no-track", "--no-explain")
    assert code == 0, err
    assert _status(d) == "completed"
    steps = [json.loads(x)["step"] for x in (d / "metrics.jsonl").read_text().splitlines()
             if "train_loss" in x]
    assert steps == list(range(1, 21))  # every epoch once, whatever the kill left behind
    code, out, _ = cli("runs")
    assert "completed" in next(ln for ln in out.splitlines() if d.name in ln)


def test_sigterm_is_an_interrupt_with_exit_143(runs_dir, cli):
    proc = _lab("run", "digits-mlp", "--no-track", "--no-explain", "--set", "epochs=200")
    d = _wait_for_epochs(runs_dir, "digits-mlp", 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert _status(d) == "interrupted"
    assert f"interrupted: resume with: lab run digits-mlp --resume {d.name}" in err
    assert "Traceback" not in err
    assert "wandb imported: False" in err  # --no-track costs nothing
    code, out, _ = cli("runs")
    assert "interrupted" in next(ln for ln in out.splitlines() if d.name in ln)


def test_ctrl_c_prints_the_resume_command(runs_dir, cli, monkeypatch):
    from supervised.xor import XorMLP

    def interrupted(self, cfg, run):
        raise KeyboardInterrupt

    monkeypatch.setattr(XorMLP, "run", interrupted)
    code, _, err = cli("run", "xor-mlp", "--no-track")
    (d,) = (runs_dir / "xor-mlp").iterdir()
    assert code == 130
    assert err.strip().endswith(f"interrupted: resume with: lab run xor-mlp --resume {d.name}")
    assert _status(d) == "interrupted"


def test_runs_dir_that_is_a_file_is_one_line(cli, tmp_path, monkeypatch):
    f = tmp_path / "not-a-dir"
    f.write_text("")
    monkeypatch.setenv("LAB_RUNS_DIR", str(f))
    code, _, err = cli("run", "xor-mlp", "--no-track")
    assert code == 2 and err.count("\n") == 1 and "is a file" in err


def test_unwritable_runs_dir_is_one_line(cli, runs_dir, monkeypatch):
    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    code, _, err = cli("run", "xor-mlp", "--no-track")
    assert code == 2 and err.count("\n") == 1 and "Permission denied" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_read_only_runs_dir_is_one_line(cli, runs_dir):
    runs_dir.mkdir()
    runs_dir.chmod(0o500)
    try:
        code, _, err = cli("run", "xor-mlp", "--no-track")
    finally:
        runs_dir.chmod(0o700)
    assert code == 2 and err.count("\n") == 1 and "Permission denied" in err


@pytest.mark.parametrize("text", ["lab: [unclosed\n", "- just\n- a list\n", "lab: xor-mlp\n"])
def test_corrupt_config_yaml_then_resume_is_one_line(cli, runs_dir, text):
    d = _interrupted(runs_dir)
    (d / "config.yaml").write_text(text)
    code, _, err = cli("run", "xor-mlp", "--resume", str(d), "--no-track")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "config.yaml" in err
    code, out, _ = cli("runs")  # still lists the others, and this one as unreadable
    assert code == 0
