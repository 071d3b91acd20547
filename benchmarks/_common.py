"""Shared by the benchmark scripts: the machine, medians and ranges, subprocesses, JSON.

Nothing here imports torch: a script's parent process stays light, its workers do the work.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def env(**extra: str) -> dict[str, str]:
    """The environment for a worker: this checkout first on the path, W&B kept in /tmp."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    e.setdefault("WANDB_SILENT", "true")
    e.setdefault("TQDM_DISABLE", "1")
    e.update(extra)
    return e


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "?"
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    vers = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "matplotlib", "lime", "wandb", "lightning"):
        try:
            vers[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram, "gpu": gpu_name(),
            "versions": vers, "load_1min_at_start": load,
            "date": time.strftime("%Y-%m-%d %H:%M")}


def gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def stats(values: list[float]) -> dict:
    """Median and range (min, max) of a list, rounded for reading."""
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "n": len(values)}


def worker(script: Path, args: list[str], **extra_env: str) -> dict:
    """Run `script --worker ...` in a fresh interpreter; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                         env=env(**extra_env), cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table (also readable in a terminal)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out)
