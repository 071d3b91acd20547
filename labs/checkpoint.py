"""Checkpoints written atomically (temp file + rename) and read back with clear errors."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from labs.errors import CheckpointError


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


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; a missing or corrupt file is a `CheckpointError` (one line, exit 2)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        # weights_only: a checkpoint is data, never code to execute
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable "
                              f"({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict")
    return state


def load_weights(module: torch.nn.Module, state: dict[str, Any], path: str | Path = "") -> None:
    """Load a model state dict, turning a shape/key mismatch into a `CheckpointError`."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path} does not fit this model: {first}") from None
