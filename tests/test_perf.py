"""Thread defaults, figure rendering and import weight: the fast-path choices of issue 14."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from labs import run, threads
from labs.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_auto_threads_is_one_on_few_cores_else_torch_default(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.resolve(0) == 1
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    assert threads.resolve(0) is None  # leave torch's own choice
    assert threads.resolve(3) == 3
    with pytest.raises(ConfigError, match="threads must be >= 0"):
        threads.resolve(-1)


def test_threads_option_is_applied_and_recorded(keep_threads):
    torch.set_num_threads(2)
    res = run("xor-mlp", epochs=2, explain=False, track=False, threads=1)
    assert torch.get_num_threads() == 1
    meta = yaml.safe_load((res.dir / "config.yaml").read_text())
    assert meta["threads"] == 1 and meta["config"]["threads"] == 1


def test_auto_threads_recorded_as_the_effective_count(keep_threads):
    res = run("xor-mlp", epochs=1, explain=False, track=False)
    meta = yaml.safe_load((res.dir / "config.yaml").read_text())
    assert meta["config"]["threads"] == 0
    assert meta["threads"] == torch.get_num_threads() >= 1


def test_bad_thread_count_is_one_line_and_makes_no_run_directory(cli, runs_dir):
    code, _, err = cli("run", "xor-mlp", "--no-track", "--set", "threads=-2")
    assert code == 2 and "threads must be >= 0" in err and "Traceback" not in err
    assert not (runs_dir / "xor-mlp").exists() or not any((runs_dir / "xor-mlp").iterdir())


def _png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_run_figures_are_dpi_100_and_laid_out_ones_are_not_cropped(runs_dir):
    res = run("xor-mlp", epochs=2, explain=False, track=False)
    # curves: 10 x 3.6 in, laid out by tight_layout -> drawn once, uncropped, 100 px per inch
    assert _png_size(res.dir / "figures" / "curves.png") == (1000, 360)
    # the decision surface has no layout engine: fitted to its content (its colorbar label
    # sticks out of the 4.2 x 3.6 in figure), not cut at 420 x 360
    assert _png_size(res.dir / "figures" / "decision.png") != (420, 360)


SAVE_WITHOUT_PYPLOT = """
import sys
from pathlib import Path
from matplotlib.figure import Figure
from labs.context import Run
class T:
    def log_figure(self, name, path): pass
d = Path(sys.argv[1]); (d / "figures").mkdir()
r = Run("x", "1", d, None, "cpu", T())
fig = Figure(figsize=(2, 1), layout="constrained"); fig.subplots().plot([0, 1])
r.figure("f", fig)
print("pyplot" if "matplotlib.pyplot" in sys.modules else "no pyplot")
"""


def test_run_figure_does_not_import_pyplot(tmp_path):
    out = subprocess.run([sys.executable, "-c", SAVE_WITHOUT_PYPLOT, str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "no pyplot"
    assert _png_size(tmp_path / "figures" / "f.png") == (200, 100)


def test_import_explain_loads_no_heavy_module():
    heavy = ["lime", "skimage", "sklearn", "matplotlib", "torch", "scipy"]
    code = f"import sys, explain; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
