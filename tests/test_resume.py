"""Checkpoint at an interval, on interrupt and at the end; resume a killed run to the same
final weights."""

from __future__ import annotations

import json
import math

import pytest
import torch
from run_helpers import KillAt

from labs import Callback, run
from labs.errors import CheckpointError


class KillMidEpoch(Callback):
    """Simulates Ctrl-C in the middle of epoch `n` (after its first batch was trained)."""

    def __init__(self, n: int):
        self.n = n

    def on_batch_end(self, trainer, batch_idx, batch, out):
        if trainer.epoch + 1 == self.n:
            raise KeyboardInterrupt


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


DIGITS = ("digits-mlp", {"epochs": 6, "dropout": 0.2})  # dropout: the torch RNG must resume too
XOR = ("xor-mlp", {"epochs": 30, "lr_schedule": "cosine"})  # the scheduler state too


@pytest.mark.parametrize("lab, overrides, kill, exact", [
    (*DIGITS, KillAt(3), True), (*XOR, KillAt(3), True),
    (*DIGITS, KillMidEpoch(4), True),  # a snapshot between every two epochs
    (*XOR, KillMidEpoch(4), False),  # tiny epochs: snapshots only every few of them
], ids=["digits-after-3", "xor-after-3", "digits-during-4", "xor-during-4"])
def test_resume_matches_uninterrupted_run(lab, overrides, kill, exact, runs_dir, cli,
                                          monkeypatch):
    """Killed after epoch 3 or during epoch 4: last.pt holds a completed epoch, 3 (or, between
    very short epochs, an earlier one), and the resumed run ends where the full run did."""
    from labs.callbacks import Checkpoint

    full = run(lab, explain=False, track=False, **overrides)
    if exact:
        monkeypatch.setattr(Checkpoint, "snapshot_share", math.inf)
    with pytest.raises(KeyboardInterrupt):
        run(lab, explain=False, track=False, callbacks=[kill], **overrides)
    (killed,) = [d for d in (runs_dir / lab).iterdir()
                 if json.loads((d / "summary.json").read_text())["status"] == "interrupted"]
    epoch = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    assert epoch == 3 if exact else epoch <= 3

    code, out, err = cli("run", lab, "--resume", killed.name, "--no-track", "--no-explain")
    assert code == 0, err
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["metrics"] == pytest.approx(full.metrics)
    resumed = torch.load(killed / "checkpoints" / "model.pt", weights_only=True)["model"]
    for k, v in _weights(full.model).items():
        assert torch.equal(v, resumed[k]), k
    # the epochs are logged once each, not twice
    steps = [json.loads(x)["step"] for x in (killed / "metrics.jsonl").read_text().splitlines()
             if "train_loss" in x]
    assert steps == list(range(1, overrides["epochs"] + 1))


def test_epoch_logged_but_not_checkpointed_is_logged_once(runs_dir, cli, monkeypatch):
    from labs import callbacks

    real = callbacks.Checkpoint.on_epoch_end

    def checkpoint_until_3(self, trainer, epoch, logs):
        if epoch == 3:
            raise KeyboardInterrupt  # killed after TrackMetrics logged epoch 3
        real(self, trainer, epoch, logs)

    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", checkpoint_until_3)
    with pytest.raises(KeyboardInterrupt):
        run("xor-mlp", epochs=6, explain=False, track=False)
    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", real)
    killed = next((runs_dir / "xor-mlp").iterdir())
    code, _, err = cli("run", "xor-mlp", "--resume", killed.name, "--no-track")
    assert code == 0, err
    steps = [json.loads(x)["step"] for x in (killed / "metrics.jsonl").read_text().splitlines()
             if "train_loss" in x]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_completed_run_is_refused(cli):
    res = run("xor-mlp", epochs=3, explain=False, track=False)
    code, _, err = cli("run", "xor-mlp", "--resume", res.run_id, "--no-track")
    assert code == 2 and "already completed" in err


def test_corrupt_checkpoint_is_one_line(cli, runs_dir):
    with pytest.raises(KeyboardInterrupt):
        run("xor-mlp", epochs=10, explain=False, track=False, callbacks=[KillAt(2)])
    killed = next((runs_dir / "xor-mlp").iterdir())
    (killed / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    code, _, err = cli("run", "xor-mlp", "--resume", str(killed), "--no-track")
    (error,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and "corrupt" in error and "Traceback" not in err
    with pytest.raises(CheckpointError):
        from labs import checkpoint

        checkpoint.load(killed / "checkpoints" / "last.pt")
