"""Helpers shared by the tests that interrupt runs (resume, ownership, distributed)."""

from __future__ import annotations

from labs import Callback


class KillAt(Callback):
    """Simulates a kill (Ctrl-C) right after epoch `n` ended."""

    def __init__(self, n: int):
        self.n = n

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.n:
            raise KeyboardInterrupt
