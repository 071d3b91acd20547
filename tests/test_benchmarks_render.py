"""The README's measured numbers are rendered from benchmarks/results/*.json, never typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_benchmark_blocks_match_the_committed_results():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr + proc.stdout
