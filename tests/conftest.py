"""Shared fixtures: every test gets its own runs directory and W&B never leaves the machine."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / ".lab-cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".wandb-config"))
    monkeypatch.delenv("LAB_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("LAB_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def cli(capsys):
    """Run `lab ...` in-process; returns (exit code, stdout, stderr)."""
    from labs.cli import main

    def _run(*argv: str):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return _run
