"""Run directories: `runs/<lab>/<id>/` with config.yaml, metrics.jsonl, summary.json,
checkpoints/, figures/, explanations/ and the W&B files. Created fresh for every run, so an
earlier run is never overwritten."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from labs.errors import RunNotFound

SUBDIRS = ("checkpoints", "figures", "explanations")


def runs_root(root: str | Path | None = None) -> Path:
    """`root`, else `$LAB_RUNS_DIR`, else `./runs`."""
    return Path(root or os.environ.get("LAB_RUNS_DIR") or "runs")


def create(lab: str, root: str | Path | None = None) -> tuple[str, Path]:
    """A new, empty run directory with a sortable, unique id."""
    base = runs_root(root) / lab
    base.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
        path = base / run_id
        try:
            path.mkdir()  # fails if it exists: never reuse another run's directory
            break
        except FileExistsError:
            continue
    for sub in SUBDIRS:
        (path / sub).mkdir()
    return run_id, path


def find(ref: str, lab: str | None = None, root: str | Path | None = None) -> Path:
    """A run by path, by `<lab>/<id>`, or by id (searched under every lab)."""
    candidates = [Path(ref)]
    base = runs_root(root)
    if lab:
        candidates.append(base / lab / ref)
    candidates.append(base / ref)
    candidates.extend(base.glob(f"*/{ref}") if base.is_dir() and "/" not in ref else [])
    for c in candidates:
        if (c / "config.yaml").is_file():
            return c
    where = f" of lab '{lab}'" if lab else ""
    raise RunNotFound(f"no run '{ref}'{where} under {base}/ (see `lab runs`)")


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def jsonable(v: Any) -> Any:
    """Strict-JSON value (NaN and infinities become null): the one rule of
    `explain.jsonsafe.jsonable`, shared with the explanations' JSON."""
    from explain.jsonsafe import jsonable as rule  # here, not on top: `lab runs` needs no numpy

    return rule(v)


def write_summary(path: Path, status: str, metrics: dict[str, Any], headline: str = "",
                  **extra: Any) -> None:
    """`summary.json`: the run's status (running, completed, failed, interrupted) and metrics."""
    write_json(path / "summary.json", {
        "status": status, "headline": headline,
        "metrics": {k: jsonable(v) for k, v in metrics.items()},
        "updated": dt.datetime.now().isoformat(timespec="seconds"), **extra})


def read_summary(path: Path) -> dict[str, Any]:
    """The run's `summary.json` (raises OSError / ValueError when missing or unreadable)."""
    return json.loads((path / "summary.json").read_text())


@dataclass
class RunInfo:
    """One row of `lab runs`."""

    lab: str
    id: str
    path: Path
    created: str
    status: str
    headline: str
    value: Any


def list_runs(root: str | Path | None = None, lab: str | None = None) -> list[RunInfo]:
    base = runs_root(root)
    rows = []
    for cfg_path in sorted(base.glob(f"{lab or '*'}/*/config.yaml")):
        path = cfg_path.parent
        try:
            cfg = read_yaml(cfg_path)
            summary = read_summary(path)
        except (OSError, ValueError, yaml.YAMLError):
            rows.append(RunInfo(path.parent.name, path.name, path, "?", "unreadable", "", None))
            continue
        key = summary.get("headline", "")
        rows.append(RunInfo(cfg.get("lab", path.parent.name), path.name, path,
                            str(cfg.get("created", "?")), summary.get("status", "?"), key,
                            summary.get("metrics", {}).get(key)))
    return sorted(rows, key=lambda r: r.created)
