"""`lab new`: write a ready plugin package with one lab, from the templates in `labs/templates/`.

A template is a folder of files ending in `.tmpl`, filled in with `string.Template`
(`$name`, `$pkg`, `$cls`, `$kind`); `_pkg_` in a path becomes the package name. Every text of
a template speaks of the new lab (its name and kind), never of an example of its own. The
result is a package a plugin author can `pip install -e` and then `lab run`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from labs.errors import LabError

if TYPE_CHECKING:
    from importlib.abc import Traversable

# `lab --help` / `lab list` read KINDS: what writing a package needs is imported by
# `new_plugin` (importlib.resources and shutil were a tenth of `lab list`)
KINDS = ("supervised",)  # generative and rl templates come with those lab families
NAME = re.compile(r"[a-z][a-z0-9-]*")


def new_plugin(name: str, directory: str | Path = ".", kind: str = "supervised") -> Path:
    """Write the plugin package `<directory>/<name>/` for lab `name`; returns its path.

    >>> new_plugin("my-lab", "plugins")   # plugins/my-lab/{pyproject.toml, my_lab/lab.py, ...}
    """
    import importlib.util
    import shutil
    from importlib import resources
    from string import Template

    if kind not in KINDS:
        raise LabError(f"unknown template kind '{kind}'; choose one of {', '.join(KINDS)}")
    if not NAME.fullmatch(name) or name.endswith("-") or "--" in name:
        raise LabError(f"invalid lab name '{name}': use lowercase letters, digits and single "
                       f"dashes, starting with a letter (e.g. my-lab)")
    pkg = name.replace("-", "_")
    if importlib.util.find_spec(pkg) is not None:
        raise LabError(f"a Python module named '{pkg}' is already installed; the plugin's "
                       f"package would shadow it: choose another name")
    from labs.registry import discover

    taken = discover().labs.get(name)
    if taken is not None:
        raise LabError(f"lab '{name}' already exists ({taken.dist}, {taken.entry_point}); "
                       f"choose another name")
    base = Path(directory)
    target = base / name
    if target.exists():
        raise LabError(f"{target} already exists; choose another name or --dir (nothing was "
                       f"overwritten)")
    blocker = next((p for p in (base, *base.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise LabError(f"cannot create {target}: {blocker} is a file, not a folder "
                       f"(give --dir a folder)")

    values = {"name": name, "pkg": pkg, "cls": "".join(p.title() for p in name.split("-")),
              "kind": kind}
    files = dict(_templates(resources.files("labs") / "templates" / kind))
    try:
        target.mkdir(parents=True)
    except OSError as e:
        raise LabError(f"cannot create {target}: {e.strerror or e}") from None
    try:
        for rel, text in files.items():
            out = target / rel.replace("_pkg_", pkg).removesuffix(".tmpl")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(Template(text).substitute(values), encoding="utf-8")
    except OSError as e:  # a full disk, say: leave no half-written package behind
        shutil.rmtree(target, ignore_errors=True)
        raise LabError(f"cannot write {target}: {e.strerror or e}") from None
    return target


def _templates(folder: Traversable, prefix: str = "") -> list[tuple[str, str]]:
    """(relative path, text) of every `.tmpl` file under `folder`."""
    out = []
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.is_dir():
            out += _templates(item, f"{prefix}{item.name}/")
        elif item.name.endswith(".tmpl"):
            out.append((prefix + item.name, item.read_text(encoding="utf-8")))
    return out
