"""Find labs through the `labs` entry-point group, without importing them.

A lab's entry is plain data (name, `module:attr`, distribution). `lab list` finds the lab's
source file on the filesystem (without importing its package: a package's `__init__` may
import torch, or fail) and reads the summary and tags with `ast`, so listing never imports
torch or a lab's heavy dependencies; only the lab being run is imported. Whatever goes wrong
while describing a plugin becomes that plugin's BROKEN line, never an error of `lab list`.
Built-in labs are registered exactly like third-party ones, in this project's own
`pyproject.toml`.

Plugin control (after pytest's `PYTEST_DISABLE_PLUGIN_AUTOLOAD`):
- `LAB_DISABLE_PLUGIN_AUTOLOAD=1`: only the built-in labs are loaded;
- `LAB_PLUGINS=dist-or-lab,...`: only the named third-party distributions or labs are loaded.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from labs.errors import DuplicateLab, LabNotFound, PluginError

GROUP = "labs"
BUILTIN_DIST = "lab-framework"
NO_RUN = "does not implement run(self, cfg, run)"


@dataclass(frozen=True)
class LabSpec:
    """One registered lab, as its entry point describes it."""

    name: str
    entry_point: str  # "package.module:Class"
    dist: str  # the distribution that registers it
    summary: str = ""
    tags: tuple[str, ...] = ()
    problem: str = ""  # why it cannot be used ("" when fine)

    @property
    def builtin(self) -> bool:
        return self.dist == BUILTIN_DIST

    @property
    def module(self) -> str:
        return self.entry_point.partition(":")[0]

    @property
    def attr(self) -> str:
        return self.entry_point.partition(":")[2]

    def load(self) -> type:
        """Import the lab class (this is where torch & co get imported)."""
        if self.problem:
            raise PluginError(f"lab '{self.name}' cannot be used: {self.problem}")
        try:
            obj = importlib.import_module(self.module)
            for part in self.attr.split("."):
                obj = getattr(obj, part)
        except Exception as e:  # a plugin's import error is reported, not raised as ours
            raise PluginError(
                f"lab '{self.name}' ({self.dist}) failed to import: {type(e).__name__}: {e}"
            ) from e
        from labs.lab import Lab

        if not (isinstance(obj, type) and issubclass(obj, Lab)):
            raise PluginError(f"lab '{self.name}' ({self.dist}): {self.entry_point} is not a Lab")
        if obj.run is Lab.run:  # caught here, not as NotImplementedError after the run started
            raise PluginError(f"lab '{self.name}' ({self.dist}): {self.entry_point} {NO_RUN}")
        obj.name = self.name
        obj.source = self.dist
        return obj


@dataclass
class Registry:
    """All labs found, plus the entries that were refused (broken, duplicate, blocked)."""

    labs: dict[str, LabSpec] = field(default_factory=dict)
    broken: list[LabSpec] = field(default_factory=list)
    conflicts: dict[str, list[LabSpec]] = field(default_factory=dict)

    def get(self, name: str) -> LabSpec:
        if name in self.conflicts:
            a, b = self.conflicts[name][:2]
            raise DuplicateLab(
                f"lab '{name}' is registered twice: by {a.dist} ({a.entry_point}) and by "
                f"{b.dist} ({b.entry_point}); uninstall one of them"
            )
        if name in self.labs:
            return self.labs[name]
        for spec in self.broken:
            if spec.name == name:
                raise PluginError(f"lab '{name}' ({spec.dist}) cannot be used: {spec.problem}")
        raise LabNotFound(name, self.labs)

    def select(self, pattern: str = "*", tag: str | None = None) -> list[LabSpec]:
        """Labs whose name matches the fnmatch `pattern` (and carry `tag`), sorted by name."""
        return sorted(
            (s for s in self.labs.values()
             if fnmatch.fnmatch(s.name, pattern) and (tag is None or tag in s.tags)),
            key=lambda s: s.name,
        )


def discover(env: dict[str, str] | None = None) -> Registry:
    """Read the `labs` entry points of every installed distribution."""
    env = os.environ if env is None else env
    _top_spec.cache_clear()  # packages come and go between discoveries, not during one
    autoload = env.get("LAB_DISABLE_PLUGIN_AUTOLOAD", "").lower() not in ("1", "true", "yes")
    allowed = {x.strip() for x in env.get("LAB_PLUGINS", "").split(",") if x.strip()}

    seen: dict[tuple[str, str, str], None] = {}
    names: dict[int, str] = {}  # a distribution's name parses its METADATA: once per dist,
    for ep in metadata.entry_points(group=GROUP):  # not once per lab (a fifth of `lab list`)
        if ep.dist is None:
            dist = "?"
        elif (dist := names.get(id(ep.dist))) is None:
            dist = names[id(ep.dist)] = ep.dist.metadata["Name"]
        seen.setdefault((ep.name, ep.value, dist), None)  # one dist can be found twice on a path

    reg = Registry()
    candidates: dict[str, list[LabSpec]] = {}
    for name, value, dist in seen:
        if dist != BUILTIN_DIST:
            if allowed and dist not in allowed and name not in allowed:
                continue
            if not allowed and not autoload:
                continue
        spec = _describe(name, value, dist)
        if spec.problem:
            reg.broken.append(spec)
        else:
            candidates.setdefault(name, []).append(spec)

    for name, specs in candidates.items():
        builtin = [s for s in specs if s.builtin]
        if len(specs) == 1:
            reg.labs[name] = specs[0]
        elif len(builtin) == 1:
            # The built-in lab keeps its name; the plugin that copies it is refused.
            reg.labs[name] = builtin[0]
            for s in specs:
                if not s.builtin:
                    reg.broken.append(_refused(s, builtin[0]))
        else:
            reg.conflicts[name] = specs
    _CACHE.save()
    return reg


def _refused(spec: LabSpec, owner: LabSpec) -> LabSpec:
    return LabSpec(spec.name, spec.entry_point, spec.dist, spec.summary, spec.tags,
                   problem=f"name already registered by {owner.dist} ({owner.entry_point})")


def _describe(name: str, value: str, dist: str) -> LabSpec:
    """Summary and tags read from the lab's source (no import); a problem if it cannot be."""
    try:
        return _read_source(name, value, dist)
    except Exception as e:  # a plugin's mistake is its BROKEN line, never a failed `lab list`
        return LabSpec(name, value, dist,
                       problem=f"reading {value} failed: {type(e).__name__}: {e}")


def _read_source(name: str, value: str, dist: str) -> LabSpec:
    module, sep, attr = value.partition(":")
    if not sep or not attr:
        return LabSpec(name, value, dist, problem=f"entry point '{value}' is not 'module:Class'")
    try:
        spec = locate(module, _top_spec)
    except (ImportError, ValueError, OSError) as e:
        return LabSpec(name, value, dist, problem=f"cannot find module {module}: {e}")
    if spec is None:
        return LabSpec(name, value, dist, problem=f"module {module} is not installed")
    if not spec.origin or not spec.origin.endswith(".py"):
        return LabSpec(name, value, dist)  # compiled or namespace: described when loaded
    try:
        facts = _facts(spec.origin, attr)
    except (OSError, SyntaxError, ValueError) as e:
        return LabSpec(name, value, dist, problem=f"cannot read {spec.origin}: {e}")
    missing = _missing_imports(facts["imports"])  # asked anew by every discover()
    if missing:
        return LabSpec(name, value, dist,
                       problem=f"{module} imports {missing}, which is not installed")
    if not facts["found"]:
        return LabSpec(name, value, dist, problem=f"{module} defines no class {attr}")
    if facts["lacks_run"]:
        return LabSpec(name, value, dist, problem=f"{value} {NO_RUN}")
    return LabSpec(name, value, dist, facts["summary"], tuple(facts["tags"]))


def _facts(origin: str, attr: str) -> dict:
    """What `lab list` needs from a lab's source, parsed once per version of the file.

    Parsing is most of `lab list`'s time and grows with the catalogue, so the facts are kept
    in a small cache file (see `SourceCache`), keyed on the file's path, size and mtime.
    """
    st = os.stat(origin)
    key = f"{origin}:{attr}"
    stamp = [st.st_mtime_ns, st.st_size]
    cached = _CACHE.get(key)
    if cached is not None and cached.get("stamp") == stamp:
        return cached
    with open(origin, encoding="utf-8") as f:
        tree = _skim(f.read(), attr, origin)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == attr), None)
    summary, tags = _class_info(cls) if cls is not None else ("", ())
    facts = {"stamp": stamp, "imports": _top_imports(tree), "found": cls is not None,
             "lacks_run": cls is not None and _lacks_run(cls), "summary": summary,
             "tags": list(tags)}
    _CACHE.put(key, facts)
    return facts


class SourceCache:
    """A JSON file of parsed lab-source facts under the user's cache directory
    (`$LAB_CACHE_DIR`, else `$XDG_CACHE_HOME/labs`, else `~/.cache/labs`). Any problem with
    it (unwritable, corrupt, raced by another process) only means parsing again."""

    VERSION = 1

    def __init__(self) -> None:
        self._data: dict[str, dict] | None = None
        self._dirty = False

    @staticmethod
    def path() -> str:
        base = os.environ.get("LAB_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
            "labs")
        return os.path.join(base, f"registry-v{SourceCache.VERSION}.json")

    def _load(self) -> dict[str, dict]:
        if self._data is None:
            try:
                import json

                with open(self.path(), encoding="utf-8") as f:
                    data = json.load(f)
                self._data = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def get(self, key: str) -> dict | None:
        value = self._load().get(key)
        return value if isinstance(value, dict) else None

    def put(self, key: str, facts: dict) -> None:
        self._load()[key] = facts
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        try:
            import json
            import tempfile

            path = self.path()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._data, f)
            os.replace(tmp, path)
        except OSError:
            pass


_CACHE = SourceCache()


_FIRST_DEF = re.compile(r"^(?:@|class\s|def\s|async\s+def\s)", re.M)
_TOP_LEVEL = re.compile(r"^\S", re.M)


def _skim(text: str, attr: str, origin: str) -> ast.Module:
    """The module's header (docstring, imports) and its class `attr`, parsed alone.

    Parsing every lab's whole file was most of `lab list`'s time, and it grows with the
    catalogue. When the cut does not parse (a column-0 line inside the class, a docstring
    that shows a class), the whole file is parsed instead; a syntax error elsewhere in the
    file is then reported when the lab is loaded.
    """
    first = _FIRST_DEF.search(text)
    cls = re.search(rf"^class\s+{re.escape(attr)}\b", text, re.M)
    if first is not None and cls is not None:
        end = _TOP_LEVEL.search(text, text.find("\n", cls.start()) + 1 or len(text))
        part = text[:first.start()] + text[cls.start():end.start() if end else len(text)]
        try:
            return ast.parse(part, origin)
        except SyntaxError:
            pass
    return ast.parse(text, origin)


def locate(module: str, find_top: Callable[[str], Any] | None = None
           ) -> importlib.machinery.ModuleSpec | None:
    """The spec (and so the file) of a dotted `module`, without importing any package.

    `importlib.util.find_spec("pkg.mod")` imports `pkg` first, running its `__init__` (which may
    import torch, or raise anything). Here only the top-level name goes through the import
    system's finders (they look, they run no package code: an editable install's finder maps
    the name to a folder); each further part is looked up on the filesystem, in its parent's
    search path. None when some part is not there. (`find_top`: `discover` asks each
    top-level name once.)
    """
    top, *rest = module.split(".")
    spec = (find_top or importlib.util.find_spec)(top)
    for i in range(len(rest)):
        if spec is None or spec.submodule_search_locations is None:
            return None  # not there, or a plain module where a package was needed
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join([top, *rest[:i + 1]]), list(spec.submodule_search_locations))
    return spec


def _lacks_run(cls: ast.ClassDef) -> bool:
    """Seen from the source: a direct `Lab` subclass whose body defines no `run`.
    (With other bases, a base may define it: `LabSpec.load` checks those.)"""
    bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None)
             for b in cls.bases]
    if bases != ["Lab"]:
        return False
    for node in ast.walk(cls):  # anywhere in the class (an `if` block too): when in doubt, load
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "run":
            return False
        if isinstance(node, ast.Name) and node.id == "run" and isinstance(node.ctx, ast.Store):
            return False
    return True


def _top_imports(tree: ast.Module) -> list[str]:
    """The top-level packages the module's top-level absolute imports need, in order."""
    tops: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        tops += [n.split(".")[0] for n in names if n.split(".")[0] not in tops]
    return tops


def _missing_imports(tops: list[str]) -> str:
    """The first of `tops` that no installed package provides."""
    for top in tops:
        if top in sys.builtin_module_names or top in sys.modules:
            continue
        if _top_spec(top) is None:
            return top
    return ""


@functools.cache
def _top_spec(top: str) -> importlib.machinery.ModuleSpec | None:
    """`find_spec` of a top-level name, asked once per `discover` (46 labs import torch,
    numpy and their own package: a sixth of `lab list` went to asking again)."""
    return importlib.util.find_spec(top)


def _class_info(cls: ast.ClassDef) -> tuple[str, tuple[str, ...]]:
    summary = ""
    tags: tuple[str, ...] = ()
    doc = ast.get_docstring(cls)
    if doc:
        summary = doc.strip().splitlines()[0]
    for node in cls.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            continue
        if target.id == "summary" and isinstance(literal, str):
            summary = literal
        elif target.id == "tags" and isinstance(literal, (tuple, list)):
            tags = tuple(str(t) for t in literal)
    return summary, tags
