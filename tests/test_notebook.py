"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel, as a student runs it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def ensure_kernel(tmp_path: Path, monkeypatch) -> None:
    """Use the installed `python3` kernel; where there is none, write one for this Python."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
        return
    except NoSuchKernel:
        pass
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    ensure_kernel(tmp_path, monkeypatch)
    runs = tmp_path / "runs"
    monkeypatch.setenv("LAB_RUNS_DIR", str(runs))  # the kernel inherits this environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert any("from labs import run" in c.source for c in nb.cells)

    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert errors == []
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                     for o in outputs)
    acc = float(re.search(r"test_acc = (\d\.\d+)", text).group(1))
    assert acc > 0.8
    assert "Sequential(" in text and "Linear(in_features=64, out_features=128" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the training curves and a LIME explanation

    (run_dir,) = (runs / "digits-mlp").iterdir()  # the run went where the user asked
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["metrics"]["test_acc"] == pytest.approx(acc, abs=1e-4)
    assert str(run_dir) in text
    assert not (run_dir / "wandb").exists()  # track=False
