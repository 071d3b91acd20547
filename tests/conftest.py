"""Shared fixtures: every test gets its own runs directory and W&B never leaves the machine."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _cache_dir(tmp_path_factory):
    """One user cache per test session (the registry's parsed sources, a digits judge trained
    for a changed recipe): shared by the tests, never $HOME's."""
    return tmp_path_factory.mktemp("lab-cache")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, _cache_dir):
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_CACHE_DIR", str(_cache_dir))
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
