"""Checkpoints: numpy and plain containers load with weights_only=True; every failure names
its cause in one line."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from labs import checkpoint
from labs.errors import CheckpointError


def test_numpy_arrays_and_plain_containers_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "array": np.arange(6.0).reshape(2, 3),
             "ints": np.array([1, 2], dtype=np.int32), "bytes": np.zeros(2, np.uint8),
             "words": np.array(["a", "bc"]), "scalar": np.float64(0.5), "count": np.int64(7),
             "vocab": {"<pad>": 0, "the": 1}, "seen": {1, 2}, "order": OrderedDict(a=1),
             "pair": (1, "x", None), "raw": b"\x00\x01", "rows": [[1.5, 2.5]]}
    checkpoint.save(state, tmp_path / "c.pt")
    back = checkpoint.load(tmp_path / "c.pt")
    assert back["array"].dtype == np.float64 and back["array"].shape == (2, 3)
    np.testing.assert_array_equal(back["array"], state["array"])
    assert back["ints"].dtype == np.int32 and back["bytes"].dtype == np.uint8
    assert list(back["words"]) == ["a", "bc"]
    assert back["scalar"] == 0.5 and back["count"] == 7
    assert back["vocab"] == {"<pad>": 0, "the": 1} and back["seen"] == {1, 2}
    assert back["order"] == OrderedDict(a=1) and back["pair"] == (1, "x", None)
    assert back["raw"] == b"\x00\x01" and back["rows"] == [[1.5, 2.5]]
    assert torch.equal(back["model"]["w"], torch.arange(3.0))


class _Evil:
    """Pickles as a call to os.system: what a crafted checkpoint would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(tmp_path / "evil.pt")
    msg = str(e.value)
    assert "refused: it holds code or types that are not allowed" in msg
    assert "system" in msg and "\n" not in msg
    assert not marker.exists()
    # the numpy allow-list is scoped to one load, never process-wide
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.save({"a": np.zeros(2)}, tmp_path / "np.pt")
        torch.load(tmp_path / "np.pt", weights_only=True)


def test_a_truncated_file_says_truncated(tmp_path):
    checkpoint.save({"model": {"w": torch.zeros(1000)}}, tmp_path / "c.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt is truncated"):
        checkpoint.load(tmp_path / "cut.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt is empty \(truncated"):
        checkpoint.load(tmp_path / "empty.pt")


@pytest.mark.parametrize("content", [b"hello, not a checkpoint", b"\x89PNG\r\n\x1a\n0000"])
def test_a_foreign_file_is_not_a_checkpoint(tmp_path, content):
    (tmp_path / "f.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=r"f.pt is not a PyTorch checkpoint"):
        checkpoint.load(tmp_path / "f.pt")


def test_a_zip_that_is_not_a_checkpoint(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "z.pt", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"z.pt is not a PyTorch checkpoint"):
        checkpoint.load(tmp_path / "z.pt")


def test_required_keys_and_non_dicts(tmp_path):
    checkpoint.save({"weights": 1, "epoch": 2}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"has no 'model' entry \(it holds: weights, epoch\)"):
        checkpoint.load(tmp_path / "c.pt", require=("model",))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a dict"):
        checkpoint.load(tmp_path / "list.pt")


def test_does_not_fit_names_the_file_or_says_the_checkpoint():
    net = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match=r"^checkpoint runs/x/model.pt does not fit"):
        checkpoint.load_weights(net, torch.nn.Linear(3, 2).state_dict(), "runs/x/model.pt")
    with pytest.raises(CheckpointError, match=r"^the checkpoint does not fit this model: "):
        checkpoint.load_weights(net, torch.nn.Linear(3, 2).state_dict())


def test_saved_models_lists_every_named_model(tmp_path):
    for name in ("", "gen", "disc", "gan/ema"):
        checkpoint.save({"model": {}}, checkpoint.model_path(tmp_path, name))
    checkpoint.save({"model": {}}, tmp_path / "checkpoints" / "last.pt")
    assert checkpoint.saved_models(tmp_path) == ["", "disc", "gan/ema", "gen"]
    assert checkpoint.model_path(tmp_path, "gen") == tmp_path / "checkpoints/gen/model.pt"


def test_background_writes_land_in_order_and_a_failure_is_raised(tmp_path, monkeypatch):
    import threading

    path = tmp_path / "last.pt"
    gate = threading.Event()
    real = checkpoint.save

    def slow_first(state, p):
        if state["n"] == 0:
            gate.wait(10)  # the first write is still running when the others are queued
        return real(state, p)

    monkeypatch.setattr(checkpoint, "save", slow_first)
    for n in range(3):
        checkpoint.save_in_background({"n": n}, path)
    gate.set()
    checkpoint.wait_pending()
    assert torch.load(path, weights_only=True)["n"] == 2  # the last asked for, not the slowest

    def broken(state, p):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save", broken)
    checkpoint.save_in_background({"n": 3}, path)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.wait_pending()
    checkpoint.wait_pending()  # reported once
    assert torch.load(path, weights_only=True)["n"] == 2  # the good file stays


def test_a_run_is_completed_only_with_its_checkpoints_on_disk(monkeypatch):
    """The end-of-fit write goes to the background; a failure there fails the run."""
    import json

    from labs import run

    real = checkpoint.save

    def failing_last(state, p):
        if p.name == "last.pt" and threading_name().startswith("checkpoint"):
            raise OSError(28, "No space left on device")
        return real(state, p)

    monkeypatch.setattr(checkpoint, "save", failing_last)
    with pytest.raises(OSError, match="No space left"):
        run("xor-mlp", epochs=3, explain=False, track=False)
    (d,) = [p for p in (Path.cwd() / "runs" / "xor-mlp").iterdir()]
    assert json.loads((d / "summary.json").read_text())["status"] == "failed"
    monkeypatch.setattr(checkpoint, "save", real)
    res = run("xor-mlp", epochs=3, explain=False, track=False)
    assert torch.load(res.dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 3


def threading_name() -> str:
    import threading

    return threading.current_thread().name
