"""The W&B side of a run, in a process of its own: `python -m labs.wandb_sidecar`.

The tracker sends it one JSON command per line on stdin (the first line: how to start W&B)
and reads warnings back from its stdout, one JSON line each. Why a process and not a thread:
`import wandb` and `wandb.init` are about a second of mostly Python work; in a thread they
hold the GIL while the lab trains, and on a 2-core machine that made a W&B-tracked
`lab run digits-mlp` 1.6 s slower than `--no-track` and its epochs up to 3x slower. In a
process they run on the other core, and the lab's process never imports wandb at all.

This module imports nothing heavy at the top (it is also imported by the tests); W&B's own
service noise goes to this process's stderr, which the tracker points at a log file.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from typing import Any


class Sink:
    """Applies the tracker's commands to one W&B run; never raises.

    The first failure of W&B is one warning (through `warn`), after which W&B is dropped and
    the remaining commands are ignored: the run directory has everything anyway.
    """

    def __init__(self, warn: Callable[[str], None], wandb: Any = None):
        self.warn = warn
        self._wandb_module = wandb
        self.run: Any = None
        self.dir = ""
        self._axes: set[str] = set()
        self._keys: set[str] = set()

    @property
    def wandb(self) -> Any:
        if self._wandb_module is None:
            import wandb

            self._wandb_module = wandb
        return self._wandb_module

    # -- start -------------------------------------------------------------------------------

    def start(self, mode: str, init: dict[str, Any], timeout: float) -> None:
        """Start W&B; an online start that fails goes offline (one warning)."""
        self.dir = init.get("dir", "")
        try:
            self.run = self._init(mode, init, timeout)
        except Exception as e:
            if mode != "online":
                self.warn(f"W&B start failed, tracking to the run directory only: {_reason(e)}")
                return
            try:
                self.wandb.teardown()  # the timed-out online stream still holds the run id
                self.run = self._init("offline", init, timeout)
                self.warn(f"W&B online start failed ({_reason(e)}); logging offline instead: "
                          f"upload later with `wandb sync {self.dir}/wandb/offline-run-*`")
            except Exception as e2:
                self.warn(f"W&B start failed, tracking to the run directory only: "
                          f"{_reason(e2)}")

    def _init(self, mode: str, init: dict[str, Any], timeout: float) -> Any:
        wandb = self.wandb
        settings = wandb.Settings(silent=True, init_timeout=timeout, console="off",
                                  x_disable_stats=True)
        return wandb.init(mode=mode, settings=settings, reinit="create_new", **init)

    # -- commands ----------------------------------------------------------------------------

    def apply(self, cmd: dict[str, Any]) -> None:
        """Run one command (`op`: log, image, video, table, config, file, summary, finish)."""
        if self.run is None:
            return
        op = cmd.get("op", "")
        try:
            getattr(self, f"_{op}")(cmd)
        except Exception as e:  # W&B must never take a run down with it
            what = {"file": "save"}.get(op, op)
            self.warn(f"W&B {what} failed, tracking to the run directory only: {_reason(e)}")
            self.run = None

    def _log(self, cmd: dict[str, Any]) -> None:
        row, axis = cmd["row"], cmd.get("axis")
        if axis is not None:
            self._declare(row, axis)
        self.run.log(row)  # no `step=`: W&B's own step only counts calls, so no row is dropped

    def _declare(self, row: dict[str, Any], axis: str) -> None:
        """Declare `axis` a step metric and the x-axis of every new key in `row`."""
        if axis not in self._axes:
            self.run.define_metric(axis)
            self._axes.add(axis)
        for key in row:
            if key not in self._keys and key not in self._axes:
                self.run.define_metric(key, step_metric=axis)
                self._keys.add(key)

    def _image(self, cmd: dict[str, Any]) -> None:
        import base64
        import io

        from PIL import Image

        image = Image.open(io.BytesIO(base64.b64decode(cmd["png"])))
        row = {cmd["name"]: self.wandb.Image(image)}
        step, axis = cmd.get("step"), cmd.get("axis") or "epoch"
        if step is not None:
            row = {axis: step, **row}
            self._declare(row, axis)
        self.run.log(row)

    def _video(self, cmd: dict[str, Any]) -> None:
        path = cmd["path"]
        self.run.log({cmd["name"]: self.wandb.Video(path, fps=cmd.get("fps", 25),
                                                    format=path.rsplit(".", 1)[-1])})

    def _table(self, cmd: dict[str, Any]) -> None:
        self.run.log({cmd["name"]: self.wandb.Table(columns=cmd["columns"], data=cmd["rows"])})

    def _file(self, cmd: dict[str, Any]) -> None:
        self.run.save(cmd["path"], cmd["base"], "now")

    def _config(self, cmd: dict[str, Any]) -> None:
        self.run.config.update(cmd["values"], allow_val_change=True)

    def _summary(self, cmd: dict[str, Any]) -> None:
        self.run.summary.update(cmd["values"])

    def _finish(self, cmd: dict[str, Any]) -> None:
        run, self.run = self.run, None
        run.finish(cmd.get("exit_code", 0))


def main() -> int:
    """Read the start line, then commands until `finish` or end of input."""
    # Ctrl-C reaches the whole process group: the lab handles it (saves, marks the run
    # interrupted, then closes our stdin); this process finishes W&B when the input ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout

    def warn(message: str) -> None:
        out.write(json.dumps({"warn": message}) + "\n")
        out.flush()

    sink = Sink(warn)
    first = sys.stdin.readline()
    if not first:
        return 0
    start = json.loads(first)
    sink.start(start["mode"], start["init"], start["timeout"])
    finished = False
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
        except ValueError:  # a torn line from a killed tracker: nothing more will come
            break
        sink.apply(cmd)
        if cmd.get("op") == "finish":
            finished = True
            break
    if not finished:  # the lab's process died: close the W&B run as failed
        sink.apply({"op": "finish", "exit_code": 1})
    if sink._wandb_module is not None:
        try:  # finish returns before the service has written the run's files; this waits
            sink.wandb.teardown()
        except Exception:
            pass
    return 0


def _reason(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
