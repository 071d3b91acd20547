"""Make plugin packages discoverable without pip, and run the real `lab` command on them.

A distribution is found by `importlib.metadata` through a `<name>-<version>.dist-info` folder
on `sys.path`: writing one (METADATA + entry_points.txt) next to a package on `PYTHONPATH` is
what `pip install` leaves behind, minus the copying, and takes a millisecond.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"  # the example third-party package `lab-moons`
MOONS = {"moons-mlp": "lab_moons.lab:MoonsMLP"}


def make_dist(site: Path, name: str, labs: dict[str, str], version: str = "0.1.0") -> Path:
    """Write `<site>/<name>-<version>.dist-info` registering `labs` ({lab: "module:Class"})."""
    info = Path(site) / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[labs]\n" + "".join(f"{lab} = {target}\n" for lab, target in labs.items()))
    return info


def make_module(site: Path, module: str, source: str) -> Path:
    """Write the module `module` (dotted: packages get an `__init__.py`) under `site`."""
    *packages, leaf = module.split(".")
    folder = Path(site)
    for pkg in packages:
        folder = folder / pkg
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "__init__.py").touch()
    path = folder / f"{leaf}.py"
    path.write_text(source)
    return path


def env_with(*paths: Path, **extra: str) -> dict[str, str]:
    """The test's environment with `paths` first on PYTHONPATH (plus `extra` variables)."""
    env = dict(os.environ)
    env.pop("LAB_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("LAB_PLUGINS", None)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *([old] if old else [])])
    env["WANDB_MODE"] = "disabled"
    env.update(extra)
    return env


def lab(*argv: str, env: dict[str, str], cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the `lab` console script (as a user would) in a fresh interpreter."""
    script = Path(sys.executable).with_name("lab")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "labs.cli"]
    return subprocess.run([*cmd, *argv], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def listed(out: str) -> dict[str, list[str]]:
    """`lab list` output as {lab name: [the rest of each of its lines]}."""
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, _, rest = line.partition(" ")
        rows.setdefault(name, []).append(rest.strip())
    return rows


def non_public_uses(source: str, filename: str = "<lab>") -> list[str]:
    """Where `source` reaches past the public API of `labs` (`labs.__all__`): `from labs.x
    import`, `import labs.x`, a name that `labs` does not export, or a private attribute of an
    exported module."""
    import labs

    public = set(labs.__all__)
    tree = ast.parse(source, filename)
    problems, imported = [], set()
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module.split(".")[0] == "labs"):
            if node.module != "labs":
                problems.append(f"{where}: from {node.module} import ...")
                continue
            for alias in node.names:
                if alias.name not in public:
                    problems.append(f"{where}: labs.{alias.name} is not public")
                imported.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("labs."):
                    problems.append(f"{where}: import {alias.name}")
                elif alias.name == "labs":
                    imported.add(alias.asname or "labs")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (
                node.value.id in imported):
            attr = node.attr
            if attr.startswith("_") or (node.value.id == "labs" and attr not in public):
                problems.append(f"{filename}:{node.lineno}: {node.value.id}.{attr}")
    return problems
