"""Run directories: `runs/<lab>/<id>/` with config.yaml, metrics.jsonl, summary.json,
checkpoints/, figures/, explanations/ and the W&B files. Created fresh for every run, so an
earlier run is never overwritten.

A run has one owner at a time: the process holding an exclusive `flock` on `<run>/.lock`
(which names it: pid, host, start time). The OS drops the lock when that process dies, however
it dies, so a run still marked "running" whose lock is free has died.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from labs.errors import LabError, RunLocked, RunNotFound

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

SUBDIRS = ("checkpoints", "figures", "explanations")
LOCK = ".lock"


def runs_root(root: str | Path | None = None) -> Path:
    """`root`, else `$LAB_RUNS_DIR`, else `./runs`."""
    return Path(root or os.environ.get("LAB_RUNS_DIR") or "runs")


def create(lab: str, root: str | Path | None = None) -> tuple[str, Path]:
    """A new, empty run directory with a sortable, unique id."""
    base = runs_root(root) / lab
    if runs_root(root).exists() and not runs_root(root).is_dir():
        raise LabError(f"the runs directory {runs_root(root)} is a file, not a folder (set "
                       f"--runs-dir or LAB_RUNS_DIR to a folder)")
    try:
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
    except OSError as e:
        raise LabError(f"cannot make a run directory under {runs_root(root)}/: "
                       f"{e.strerror or e} (set --runs-dir or LAB_RUNS_DIR to a writable "
                       f"folder)") from None
    return run_id, path


class RunLock:
    """The exclusive ownership of a run directory, for as long as this process holds it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise `RunLocked` naming the live owner."""
        if fcntl is None:
            return self
        lock = self.path / LOCK
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise LabError(f"cannot write to run {self.path}: {e.strerror or e}") from None
        # `lab runs` probes the lock for a moment: retry briefly rather than refuse
        for attempt in range(10):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 9:
                    os.close(fd)
                    raise RunLocked(f"run {self.path} is in use by {owner_text(self.path)}: "
                                    f"one run has one owner; wait for it or stop it "
                                    f"first") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, (f"pid {os.getpid()}\nhost {socket.gethostname()}\n"
                      f"started {dt.datetime.now().isoformat(timespec='seconds')}\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __del__(self) -> None:  # a lock taken and then dropped on an error path
        self.release()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def owner_text(path: Path) -> str:
    """`pid@host (since <time>)` as written by the lock's holder."""
    try:
        fields = dict(line.split(" ", 1) for line in
                      (Path(path) / LOCK).read_text().splitlines() if " " in line)
    except OSError:
        return "another process"
    who = f"{fields.get('pid', '?')}@{fields.get('host', '?')}"
    return f"process {who}" + (f" (since {fields['started']})" if "started" in fields else "")


def is_owned(path: Path) -> bool:
    """Whether a live process holds the run's lock (False when there is no lock file)."""
    if fcntl is None:
        return True  # cannot tell: never call a run dead
    try:
        fd = os.open(Path(path) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the shared lock, if taken


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
    """A YAML mapping (a run's config.yaml); a file that is not one is a one-line `LabError`."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise LabError(f"{path} is not valid YAML{where}: the file is damaged") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LabError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(data, dict):
        raise LabError(f"{path} is not a run's config (a mapping with 'lab' and 'config'): "
                       f"the file is damaged")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


_PLAIN = (int, str, bool, type(None))


def jsonable(v: Any) -> Any:
    """Strict-JSON value (NaN and infinities become null): the one rule of
    `explain.jsonsafe.jsonable`, shared with the explanations' JSON."""
    if type(v) in _PLAIN or (type(v) is float and math.isfinite(v)):  # every epoch's logs
        return v
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
    status: str  # running, completed, failed, interrupted, died (its owner is gone)
    headline: str
    value: Any
    parent: str = ""  # "<lab>/<run id>" of the run this one is part of (a search's trial)

    @property
    def resume_command(self) -> str:
        return f"lab run {self.lab} --resume {self.id}"


def list_runs(root: str | Path | None = None, lab: str | None = None) -> list[RunInfo]:
    base = runs_root(root)
    rows = []
    for cfg_path in sorted(base.glob(f"{lab or '*'}/*/config.yaml")):
        path = cfg_path.parent
        try:
            cfg = read_yaml(cfg_path)
            summary = read_summary(path)
        except (OSError, ValueError, LabError):
            rows.append(RunInfo(path.parent.name, path.name, path, "?", "unreadable", "", None))
            continue
        key = summary.get("headline", "")
        status = summary.get("status", "?")
        if status == "running" and not is_owned(path):
            status = "died"  # killed (SIGKILL, power loss) before it could say so
        parent = (cfg.get("recorded") or {}).get("parent") or {}
        rows.append(RunInfo(cfg.get("lab", path.parent.name), path.name, path,
                            str(cfg.get("created", "?")), status, key,
                            summary.get("metrics", {}).get(key),
                            f"{parent.get('lab')}/{parent.get('run_id')}"
                            if isinstance(parent, dict) and parent else ""))
    return sorted(rows, key=lambda r: r.created)
