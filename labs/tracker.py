"""Where a run's numbers, figures, tables and files go: the run directory always, and
Weights & Biases unless it is turned off.

W&B runs offline by default (no account needed; its files sit in the run directory and
`wandb sync <run>/wandb/offline-run-*` uploads them later); `--wandb online` or `WANDB_MODE`
switch to online; `--no-track` turns it off (and wandb is never imported).

Tracking never crashes or stalls a run: W&B starts in a background thread while the lab loads
its data and trains, and what is logged before it is up waits in order in a buffer. An online
start that fails or takes longer than `INIT_TIMEOUT` falls back to offline files, with one
warning; any other W&B failure is one warning and W&B is dropped for the rest of the run.

Every value is logged against a named step axis (`epoch`, `<fit>/epoch`, `global_step`,
`env_step`...), declared to W&B with `define_metric`, never W&B's implicit step: that one must
only grow, and W&B silently drops rows whose step goes back (a second fit, the next gate).
Nothing here touches the process's environment: a notebook's second run is a run of its own.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labs.rundir import jsonable

WANDB_MODES = ("offline", "online", "disabled")
INIT_TIMEOUT = 15.0  # seconds an online W&B start may take before the run goes offline
JOIN_TIMEOUT = 120.0  # the most `finish` waits for a W&B start still under way


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
        self._wandb = None
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Callable]] | None = None  # calls made before W&B is up
        self._closed = False
        self._held = False  # counts in `_live`
        self._axes: set[str] = set()  # declared to W&B as step metrics
        self._keys: set[str] = set()  # declared to W&B with their step metric
        self._thread = None
        if wandb_mode != "disabled":
            self._pending = []
            init = dict(project=project, entity=entity, name=name, id=run_id,
                        config=config, tags=list(tags), resume="allow" if resume else None)
            self._thread = threading.Thread(target=self._start, args=(wandb_mode, init),
                                            name="wandb-start", daemon=True)
            self._thread.start()

    # -- W&B start-up (background thread) ----------------------------------------------------

    def _start(self, mode: str, init: dict[str, Any]) -> None:
        run = None
        try:
            run = self._init(mode, init)
        except Exception as e:
            if mode == "online":
                try:
                    _teardown()  # the timed-out online stream still holds the run id
                    run = self._init("offline", init)
                    _warn(f"W&B online start failed ({_reason(e)}); logging offline instead: "
                          f"upload later with `wandb sync {self.dir}/wandb/offline-run-*`")
                except Exception as e2:
                    _warn(f"W&B start failed, tracking to the run directory only: "
                          f"{_reason(e2)}")
            else:
                _warn(f"W&B start failed, tracking to the run directory only: {_reason(e)}")
        with self._lock:
            if run is not None:
                _hold()
                self._held = True
            self._wandb = run
            pending, self._pending = self._pending or [], None
            for what, fn in pending:
                if self._wandb is not None:
                    self._guard(what, fn)
            if self._closed and self._wandb is not None:  # `finish` gave up waiting
                self._guard("finish", lambda w: w.finish(1))
                self._drop()

    def _init(self, mode: str, init: dict[str, Any]):
        import wandb

        settings = wandb.Settings(silent=True, init_timeout=INIT_TIMEOUT, console="off",
                                  x_disable_stats=True)
        with _quiet_service():
            wandb.setup(wandb.Settings(silent=True))  # quiet from the first line (login...)
        return wandb.init(mode=mode, dir=str(self.dir), settings=settings,
                          reinit="create_new", **init)

    def _call(self, what: str, fn: Callable[[Any], Any]) -> None:
        """Run `fn(wandb_run)` now, or once W&B is up; nothing when W&B is off or failed."""
        if self._pending is None and self._wandb is None:
            return
        with self._lock:
            if self._pending is not None:
                self._pending.append((what, fn))
            elif self._wandb is not None:
                self._guard(what, fn)

    def _guard(self, what: str, fn: Callable[[Any], Any]) -> Any:
        """Run a W&B call; on any failure warn once and stop using W&B."""
        try:
            return fn(self._wandb)
        except Exception as e:  # W&B must never take a run down with it
            _warn(f"W&B {what} failed, tracking to the run directory only: {_reason(e)}")
            self._drop()
            return None

    def _drop(self) -> None:
        """Stop using W&B (the service stops with the process's last W&B run)."""
        self._wandb = None
        if self._held:
            self._held = False
            _release()

    @property
    def wandb_run(self):
        """The live `wandb.Run` (waiting for its start), or None when W&B is off or failed."""
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)
        return self._wandb

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
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if step is not None:
            row = {axis: step, **row}
        self._call("log", lambda w: self._wandb_log(w, row, axis if step is not None else None))

    def _wandb_log(self, w: Any, row: dict[str, Any], axis: str | None) -> None:
        if axis is not None:
            if axis not in self._axes:
                w.define_metric(axis)
                self._axes.add(axis)
            for key in row:
                if key not in self._keys and key not in self._axes:
                    w.define_metric(key, step_metric=axis)
                    self._keys.add(key)
        w.log(row)  # no `step=`: W&B's own step only counts calls, so no row is dropped

    def forget_after(self, step: int, key: str) -> None:
        """Drop the rows holding `key` logged after `step`: a run killed between logging an
        epoch and checkpointing it logs that epoch again when it resumes."""
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
        drawn every few epochs becomes a slider on the run's epoch axis)."""
        def send(w):
            import wandb

            row = {name: wandb.Image(str(path))}
            if step is None:
                w.log(row)
            else:
                self._wandb_log(w, {axis: step, **row}, axis)

        self._call("image", send)

    def log_video(self, name: str, path: Path, fps: int = 25) -> None:
        """An animation already written to the run directory (a GIF, an MP4), as W&B media."""
        def send(w):
            import wandb

            w.log({name: wandb.Video(str(path), fps=fps, format=Path(path).suffix.lstrip("."))})

        self._call("video", send)

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table: written as JSON to the run directory and as a `wandb.Table`."""
        path = self.dir / f"{name.replace('/', '_')}.table.json"
        path.write_text(json.dumps({"columns": list(columns),
                                    "rows": [[jsonable(v) for v in r] for r in rows]}, indent=1))
        columns, rows = list(columns), [list(r) for r in rows]

        def send(w):
            import wandb

            w.log({name: wandb.Table(columns=columns, data=rows)})

        self._call("table", send)

    def log_file(self, path: Path) -> None:
        self._call("save", lambda w: w.save(str(path), str(self.dir), "now"))

    def summary(self, metrics: dict[str, Any]) -> None:
        values = {k: jsonable(v) for k, v in metrics.items()}
        self._call("summary", lambda w: w.summary.update(values))

    def finish(self, exit_code: int = 0) -> None:
        """Close metrics.jsonl; wait for W&B's start (bounded), flush and finish it."""
        self._file.close()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)
            self._thread = None
        with self._lock:
            self._closed = True
            if self._pending is not None:
                _warn(f"W&B did not start within {JOIN_TIMEOUT:.0f} s; the run directory has "
                      f"everything")
            elif self._wandb is not None:
                self._guard("finish", lambda w: w.finish(exit_code))
                self._drop()


_live = 0  # W&B runs of this process not finished yet
_live_lock = threading.Lock()


def _hold() -> None:
    global _live
    with _live_lock:
        _live += 1


def _release() -> None:
    """`finish` returns before W&B's service has written the run's files; stopping the
    service (when no other run of this process uses it) writes them before the run ends."""
    global _live
    with _live_lock:
        _live -= 1
        if _live == 0:
            try:
                _teardown()
            except Exception:  # the files are complete a moment later anyway
                pass


def _warn(message: str) -> None:
    warnings.warn(message, TrackingWarning, stacklevel=2)


def _reason(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _teardown() -> None:
    import wandb

    wandb.teardown()


@contextlib.contextmanager
def _quiet_service():
    """Start W&B's service process with its stdout/stderr closed.

    It logs to a file under W&B's cache dir, but when that is not writable it prints every log
    line to the terminal it inherited (about 18 lines per run). Its output is never for the
    user; wandb offers no setting for it, hence this narrow patch of its launcher.
    """
    try:
        import subprocess

        from wandb.sdk.lib.service import service_process
    except ImportError:  # another wandb layout: nothing to quieten
        yield
        return
    real = getattr(service_process, "subprocess", None)
    if real is not subprocess:
        yield
        return

    class _Quiet:
        def __getattr__(self, name):
            return getattr(subprocess, name)

        @staticmethod
        def Popen(*args, **kwargs):  # noqa: N802 - subprocess's name
            for stream in ("stdout", "stderr"):
                if kwargs.get(stream) is None:
                    kwargs[stream] = subprocess.DEVNULL
            return subprocess.Popen(*args, **kwargs)

    service_process.subprocess = _Quiet()
    try:
        yield
    finally:
        service_process.subprocess = real


def _row(line: str) -> dict | None:
    """One metrics.jsonl row, or None for the torn last line a killed process can leave."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None
