"""Errors a user can cause. The CLI prints them as one line and exits with code 2.

Bugs are not `LabError`s: they keep their traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LabError(Exception):
    """A mistake the user can fix (bad name, bad config value, missing data...)."""

    exit_code = 2


class LabNotFound(LabError):
    """No lab is registered under the name asked for."""

    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        matches = did_you_mean(name, known)
        hint = f" Did you mean: {', '.join(matches)}?" if matches else ""
        super().__init__(f"unknown lab '{name}'.{hint} Run `lab list` to see all labs.")


class DuplicateLab(LabError):
    """Two installed packages register a lab under the same name."""


class PluginError(LabError):
    """A plugin's entry point cannot be imported or is not a Lab."""


class ConfigError(LabError):
    """An unknown config key, a value of the wrong type or an unreadable config file."""


class RunNotFound(LabError):
    """`--resume` / `lab explain` named a run that does not exist."""


class RunLocked(LabError):
    """Another live process owns the run directory (holds its lock)."""


class CheckpointError(LabError):
    """A checkpoint is missing, corrupt or does not fit the model."""


class OutOfMemory(LabError):
    """The model or a batch does not fit in the device's memory."""


class DataNotFound(LabError):
    """A dataset's files are absent and cannot be downloaded."""


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` close matches of `name` among `known`, best first."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=0.5)


class TrainingDiverged(LabError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""
