"""Where a run's numbers, figures, tables and files go: the run directory always, and
Weights & Biases unless it is turned off.

W&B runs offline by default (no account needed; its files sit in the run directory and
`wandb sync <run>/wandb/offline-run-*` uploads them later); `--wandb online` or `WANDB_MODE`
switch to online; `--no-track` turns it off.

Tracking never crashes or stalls a run: W&B lives in a sidecar process
(`labs.wandb_sidecar`) that starts while the lab loads its data and trains, on another core,
and receives every call in order through a pipe; the lab's process never imports wandb. An
online start that fails or takes longer than `INIT_TIMEOUT` falls back to offline files, with
one warning; any other W&B failure is one warning and W&B is dropped for the rest of the run.
The sidecar's warnings reach the lab's process (as `TrackingWarning`s) when the run finishes.

Every value is logged against a named step axis (`epoch`, `<fit>/epoch`, `global_step`,
`env_step`...), declared to W&B with `define_metric`, never W&B's implicit step: that one must
only grow, and W&B silently drops rows whose step goes back (a second fit, the next gate).
Nothing here touches the process's environment: a notebook's second run is a run of its own.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labs.rundir import jsonable

WANDB_MODES = ("offline", "online", "disabled")
INIT_TIMEOUT = 15.0  # seconds an online W&B start may take before the run goes offline
JOIN_TIMEOUT = 120.0  # the most `finish` waits for the sidecar to send everything to W&B
# A logged row reaches metrics.jsonl (and W&B's sidecar) with the first row logged
# FLUSH_EVERY seconds or more after the previous flush, with the next checkpoint write, or
# when the run ends. A SIGKILL can lose up to a second of logging's rows, never those of an
# epoch a checkpoint holds.
FLUSH_EVERY = 1.0


class TrackingWarning(RuntimeWarning):
    """W&B failed or went offline; the run itself goes on."""


class Tracker:
    """Logs to `<run>/metrics.jsonl` (one JSON object per call) and to W&B."""

    def __init__(self, run_dir: Path, *, wandb_mode: str = "offline", project: str = "labs",
                 entity: str | None = None, name: str | None = None, run_id: str | None = None,
                 config: dict[str, Any] | None = None, tags: Sequence[str] = (),
                 resume: bool = False):
        self.dir = Path(run_dir)
        self.metrics_path = self.dir / "metrics.jsonl"
        self._file = open(self.metrics_path, "a", encoding="utf-8")
        self._flushed = time.monotonic()
        # rows and their W&B commands wait here until the next flush: formatting them and
        # waking the sidecar's writer thread once a second, not once an epoch, keeps the
        # training loop's epochs short
        self._rows: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []
        self._sidecar: Sidecar | None = None
        if wandb_mode != "disabled":
            init = dict(project=project, entity=entity, name=name, id=run_id,
                        config=jsonable(config or {}), tags=list(tags),
                        resume="allow" if resume else None, dir=str(self.dir))
            self._sidecar = Sidecar(self.dir, {"mode": wandb_mode, "init": init,
                                               "timeout": INIT_TIMEOUT})

    def _send(self, op: str, **fields: Any) -> None:
        if self._sidecar is not None:
            self._send_logs()  # W&B gets every command in the order the lab made it
            self._sidecar.send({"op": op, **fields})

    def _send_logs(self) -> None:
        if self._logs and self._sidecar is not None:
            self._sidecar.send(self._logs)
            self._logs = []

    # -- logging -----------------------------------------------------------------------------

    def log(self, metrics: dict[str, Any], step: int | None = None, *,
            axis: str = "step") -> None:
        """Record scalars at `step` of the named step `axis` (epoch, `<fit>/epoch`, env_step).

        metrics.jsonl gets `{"step": step, "axis": axis, axis: step, ...}`; W&B gets the axis
        as a key, declared as the x-axis of every key logged with it (a key keeps the first
        axis it was logged on: use another name for the same value on another axis).
        """
        row = {k: jsonable(v) for k, v in metrics.items()}
        if step is None:
            record = {"step": None, "time": round(time.time(), 3), **row}
        else:
            record = {"step": step, "axis": axis, axis: step, "time": round(time.time(), 3),
                      **row}
        self._rows.append(record)
        if self._sidecar is not None:
            self._logs.append({"op": "log", "row": {axis: step, **row} if step is not None
                               else row, "axis": axis if step is not None else None})
        now = time.monotonic()
        if now - self._flushed >= FLUSH_EVERY:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Write the waiting rows to metrics.jsonl and hand their W&B commands to the sidecar
        now (a checkpoint write calls it first)."""
        if self._rows:
            self._file.write("".join(json.dumps(r) + "\n" for r in self._rows))
            self._rows = []
        self._file.flush()
        self._send_logs()
        self._flushed = time.monotonic() if now is None else now

    def forget_after(self, step: int, key: str) -> None:
        """Drop the rows holding `key` logged after `step`: a run killed between logging an
        epoch and checkpointing it logs that epoch again when it resumes."""
        self.flush()
        self._file.close()
        rows = self.metrics_path.read_text(encoding="utf-8").splitlines()
        kept = [r for r in rows if (d := _row(r)) is not None
                and not (key in d and (d.get("step") or 0) > step)]
        if len(kept) != len(rows):
            self.metrics_path.write_text("".join(r + "\n" for r in kept), encoding="utf-8")
        self._file = open(self.metrics_path, "a", encoding="utf-8")

    def log_figure(self, name: str, path: Path, step: int | None = None, *,
                   axis: str = "epoch") -> None:
        """An image file as W&B media; with `step`, placed at that step of `axis` (a figure
        drawn every few epochs becomes a slider on the run's epoch axis).

        The PNG's bytes travel with the call: a figure redrawn under the same name (a GAN's
        progress grid) must reach W&B as it was at this step, not as the file is by the time
        the sidecar gets to it."""
        if self._sidecar is None:
            return
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        self._send("image", name=name, png=data, step=step, axis=axis)

    def log_video(self, name: str, path: Path, fps: int = 25) -> None:
        """An animation already written to the run directory (a GIF, an MP4), as W&B media."""
        self._send("video", name=name, path=str(path), fps=fps)

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table: written as JSON to the run directory and as a `wandb.Table`."""
        path = self.dir / f"{name.replace('/', '_')}.table.json"
        columns, rows = list(columns), [[jsonable(v) for v in r] for r in rows]
        path.write_text(json.dumps({"columns": columns, "rows": rows}, indent=1))
        self._send("table", name=name, columns=columns, rows=rows)

    def config(self, values: dict[str, Any]) -> None:
        """Add `values` to the W&B run's config (what a lab decided while it ran)."""
        self._send("config", values={k: jsonable(v) for k, v in values.items()})

    def log_file(self, path: Path) -> None:
        self._send("file", path=str(path), base=str(self.dir))

    def summary(self, metrics: dict[str, Any]) -> None:
        self._send("summary", values={k: jsonable(v) for k, v in metrics.items()})

    def finish(self, exit_code: int = 0) -> None:
        """Close metrics.jsonl; let the sidecar send the rest to W&B and finish (bounded)."""
        self.flush()
        self._file.close()
        if self._sidecar is not None:
            sidecar, self._sidecar = self._sidecar, None
            for message in sidecar.close(exit_code):
                _warn(message)


class Sidecar:
    """The W&B process of one run: commands go in through its stdin in order, from a writer
    thread (so a slow start never blocks the lab), warnings come back on its stdout."""

    def __init__(self, run_dir: Path, start: dict[str, Any]):
        log = run_dir / "wandb"
        log.mkdir(exist_ok=True)
        self._log = open(log / "sidecar.log", "wb")  # W&B's service noise; never the terminal
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._queue.put(start)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "labs.wandb_sidecar"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, env=_child_env(), close_fds=True)
        self._warnings: list[str] = []
        self._writer = threading.Thread(target=self._write, name="wandb-sidecar-in",
                                        daemon=True)
        self._reader = threading.Thread(target=self._read, name="wandb-sidecar-out",
                                        daemon=True)
        self._writer.start()
        self._reader.start()

    def send(self, cmd: dict[str, Any] | list[dict[str, Any]]) -> None:
        """One command, or a list of them (written in one go)."""
        self._queue.put(cmd)

    def _write(self) -> None:
        stdin = self._proc.stdin
        while True:
            cmd = self._queue.get()
            if cmd is None:
                break
            try:
                cmds = cmd if isinstance(cmd, list) else [cmd]
                stdin.write("".join(json.dumps(c) + "\n" for c in cmds).encode())
                if self._queue.empty():
                    stdin.flush()
            except (OSError, ValueError):  # the sidecar died: what is left has nowhere to go
                break
        try:
            stdin.close()
        except OSError:
            pass

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                self._warnings.append(json.loads(line)["warn"])
            except (ValueError, KeyError, TypeError):
                continue

    def close(self, exit_code: int) -> list[str]:
        """Finish the W&B run, wait for the sidecar (at most `JOIN_TIMEOUT`); its warnings."""
        self._queue.put({"op": "finish", "exit_code": exit_code})
        self._queue.put(None)
        try:
            self._proc.wait(JOIN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            self._warnings.append(f"W&B did not finish within {JOIN_TIMEOUT:.0f} s; the run "
                                  f"directory has everything")
        self._writer.join(5)
        self._reader.join(5)
        self._proc.stdout.close()
        self._log.close()
        return list(self._warnings)


def _child_env() -> dict[str, str]:
    """The sidecar imports `labs` from wherever this process did (a source checkout too)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _warn(message: str) -> None:
    warnings.warn(message, TrackingWarning, stacklevel=2)


def _row(line: str) -> dict | None:
    """One metrics.jsonl row, or None for the torn last line a killed process can leave."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None
