"""Read an offline W&B run's `run-*.wandb` file back (tests only).

The file is a LevelDB-style log: a 7-byte W&B header, then 32 KiB blocks of chunks, each with
a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) holding protobuf
`Record`s.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a W&B record file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending += chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(pending)
            pending = b""
            yield rec


def read_run(run_dir: Path) -> dict:
    """{'config': {...}, 'history': [{...}], 'summary': {...}, 'metrics': {name: step_metric}}
    from the offline run files (`metrics`: the `define_metric` declarations)."""
    files = list(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run under {run_dir}"
    out: dict = {"config": {}, "history": [], "summary": {}, "metrics": {}}
    for rec in records(files[0]):
        kind = rec.WhichOneof("record_type")
        if kind == "metric":
            out["metrics"][rec.metric.name] = rec.metric.step_metric
        elif kind == "config":
            for item in rec.config.update:
                out["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "run":
            for item in rec.run.config.update:
                out["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            for item in rec.summary.update:
                out["summary"][_key(item)] = json.loads(item.value_json)
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)
