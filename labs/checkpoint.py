"""Checkpoints written atomically (temp file + rename) and read back with clear errors.

A checkpoint is data, never code: it is always read with `torch.load(weights_only=True)`.
Besides tensors and plain Python containers (dict, list, tuple, set, str, numbers, bytes), the
state may hold numpy arrays, numpy scalars and dtypes: those few numpy names are allow-listed
for the duration of one load (`SAFE_NUMPY`), never process-wide.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from labs.errors import CheckpointError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6 is a zip archive
PICKLE_MAGIC = b"\x80"  # the legacy format starts with a pickle protocol opcode


def save(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` to `path` so that a crash mid-write never leaves a torn file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# One writer thread: checkpoints written in the background land in the order they were asked
# for (a later last.pt never overtaken by an earlier one), while training or evaluation goes on.
_writer: Any = None
_pending: list[Any] = []
_pending_lock = threading.Lock()


def save_in_background(state: dict[str, Any], path: str | Path) -> None:
    """`save(state, path)` on the writer thread. `state` must not change afterwards (pass a
    copy); `wait_pending()` waits for every queued write and raises the first failure."""
    global _writer
    with _pending_lock:
        if _writer is None:
            from concurrent.futures import ThreadPoolExecutor

            # its worker is joined at interpreter exit: a queued checkpoint is never lost
            _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        _pending.append(_writer.submit(save, state, path))


def wait_pending() -> None:
    """Block until every background checkpoint is on disk; re-raise the first that failed."""
    with _pending_lock:
        futures = list(_pending)
        _pending.clear()
    errors = [f.exception() for f in futures]
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first


@functools.cache
def safe_numpy() -> tuple[Any, ...]:
    """The numpy names a pickled array, scalar or dtype needs, and nothing else."""
    import numpy as np
    import numpy.dtypes

    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed the package
    dtypes = [getattr(numpy.dtypes, n) for n in numpy.dtypes.__all__]
    return (core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *dtypes)


def load(path: str | Path, map_location: str | torch.device = "cpu", *,
         require: Iterable[str] = ()) -> dict[str, Any]:
    """Read a checkpoint dict holding at least the keys `require`.

    Every failure is a `CheckpointError` that names its cause: missing, empty or truncated,
    not a PyTorch checkpoint, refused (it holds code or types that are not allowed), not a
    dict, or a required key missing.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (truncated: the write never "
                              f"finished)")
    if not (head.startswith(ZIP_MAGIC) or head.startswith(PICKLE_MAGIC)):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint")
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            # the zip's central directory is written last: a cut-off file has none
            raise CheckpointError(f"checkpoint {path} is truncated (an interrupted copy or "
                                  f"write)")
        with zipfile.ZipFile(path) as z:
            if not any(n.endswith("/data.pkl") for n in z.namelist()):
                raise CheckpointError(f"{path} is not a PyTorch checkpoint (a zip archive "
                                      f"without data.pkl)")
    try:
        with torch.serialization.safe_globals(list(safe_numpy())):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(_why(path, e)) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict "
                              f"of state")
    missing = [k for k in require if k not in state]
    if missing:
        held = ", ".join(map(str, list(state)[:8])) or "nothing"
        raise CheckpointError(f"checkpoint {path} has no {', '.join(map(repr, missing))} "
                              f"entry (it holds: {held})")
    return state


def _why(path: Path, e: Exception) -> str:
    """One line for a failed `torch.load`."""
    import pickle

    text = str(e)
    if isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return (f"checkpoint {path} refused: it holds code or types that are not "
                f"allowed{what}")
    if isinstance(e, EOFError) or "central directory" in text or "truncated" in text.lower():
        return f"checkpoint {path} is truncated (an interrupted copy or write)"
    if "data.pkl" in text or isinstance(e, (KeyError, IndexError)):
        return f"{path} is not a PyTorch checkpoint"
    first = text.strip().splitlines()[0][:160] if text.strip() else ""
    return f"checkpoint {path} is unreadable ({type(e).__name__}{': ' + first if first else ''})"


def load_weights(module: torch.nn.Module, state: dict[str, Any], path: str | Path = "") -> None:
    """Load a model state dict, turning a shape/key mismatch into a `CheckpointError`."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"checkpoint {path}" if str(path) else "the checkpoint"
        raise CheckpointError(f"{where} does not fit this model: {first}") from None


def model_path(run_dir: str | Path, name: str = "") -> Path:
    """Where a run keeps the final weights of its model `name`: `checkpoints/[<name>/]model.pt`."""
    ckdir = Path(run_dir) / "checkpoints"
    return (ckdir / name if name else ckdir) / "model.pt"


def saved_models(run_dir: str | Path) -> list[str]:
    """Names of the models a run saved with `model_path` ("" for the unnamed one), sorted."""
    ckdir = Path(run_dir) / "checkpoints"
    names = [""] if (ckdir / "model.pt").is_file() else []
    if ckdir.is_dir():
        names += sorted(p.parent.relative_to(ckdir).as_posix()
                        for p in ckdir.glob("*/**/model.pt"))
    return names
