"""Where a run's numbers, figures, tables and files go: the run directory always, and
Weights & Biases unless it is turned off.

W&B runs offline by default (no account needed; its files sit in the run directory and
`wandb sync <run>/wandb/offline-run-*` uploads them later); `--wandb online` or `WANDB_MODE`
switch to online; `--no-track` turns it off. wandb is imported inside the tracker, and any W&B
failure becomes one warning and W&B is dropped for the rest of the run: tracking never crashes
or hangs a run.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labs.rundir import jsonable

WANDB_MODES = ("offline", "online", "disabled")


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
        if wandb_mode != "disabled":
            self._guard("start", self._start_wandb, wandb_mode, project, entity, name, run_id,
                        config, tags, resume)

    # -- W&B ---------------------------------------------------------------------------------

    def _start_wandb(self, mode, project, entity, name, run_id, config, tags, resume):
        os.environ.setdefault("WANDB_SILENT", "true")
        # keep wandb's service logs with the run, not in the user's home
        os.environ.setdefault("WANDB_CACHE_DIR", str(self.dir / "wandb" / ".cache"))
        import wandb

        settings = wandb.Settings(silent=True, init_timeout=60, console="off",
                                  x_disable_stats=True)
        self._wandb = wandb.init(
            mode=mode, dir=str(self.dir), project=project, entity=entity, name=name,
            id=run_id, config=config, tags=list(tags), settings=settings,
            resume="allow" if resume else None, reinit="create_new",
        )

    def _guard(self, what: str, fn, *args) -> Any:
        """Run a W&B call; on any failure warn once and stop using W&B."""
        try:
            return fn(*args)
        except Exception as e:  # W&B must never take a run down with it
            warnings.warn(f"W&B {what} failed, tracking to the run directory only: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                          RuntimeWarning, stacklevel=3)
            self._wandb = None
            return None

    @property
    def wandb_run(self):
        """The live `wandb.Run`, or None when W&B is off or failed."""
        return self._wandb

    # -- logging -----------------------------------------------------------------------------

    def log(self, metrics: dict[str, Any], step: int | None = None, *,
            axis: str = "step") -> None:
        """Record scalars at `step` (epoch, environment step...)."""
        row = {k: jsonable(v) for k, v in metrics.items()}
        record = {"step": step, axis: step, "time": round(time.time(), 3), **row}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._wandb is not None:
            self._guard("log", self._wandb.log, row, step)

    def forget_after(self, step: int, key: str) -> None:
        """Drop the rows holding `key` logged after `step`: a run killed between logging an
        epoch and checkpointing it logs that epoch again when it resumes."""
        self._file.close()
        rows = self.metrics_path.read_text(encoding="utf-8").splitlines()
        kept = [r for r in rows
                if not (key in (d := json.loads(r)) and (d.get("step") or 0) > step)]
        if len(kept) != len(rows):
            self.metrics_path.write_text("".join(r + "\n" for r in kept), encoding="utf-8")
        self._file = open(self.metrics_path, "a", encoding="utf-8")

    def log_figure(self, name: str, path: Path) -> None:
        if self._wandb is not None:
            import wandb

            self._guard("image", lambda: self._wandb.log({name: wandb.Image(str(path))}))

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table: written as JSON to the run directory and as a `wandb.Table`."""
        path = self.dir / f"{name.replace('/', '_')}.table.json"
        path.write_text(json.dumps({"columns": list(columns),
                                    "rows": [[jsonable(v) for v in r] for r in rows]}, indent=1))
        if self._wandb is not None:
            import wandb

            self._guard("table", lambda: self._wandb.log(
                {name: wandb.Table(columns=list(columns), data=[list(r) for r in rows])}))

    def log_file(self, path: Path) -> None:
        if self._wandb is not None:
            self._guard("save", self._wandb.save, str(path), str(self.dir), "now")

    def summary(self, metrics: dict[str, Any]) -> None:
        if self._wandb is not None:
            self._guard("summary", self._wandb.summary.update,
                        {k: jsonable(v) for k, v in metrics.items()})

    def finish(self, exit_code: int = 0) -> None:
        self._file.close()
        if self._wandb is not None:
            self._guard("finish", self._wandb.finish, exit_code)
            self._wandb = None

