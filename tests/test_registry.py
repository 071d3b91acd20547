"""The registry: entry points as plain data, no imports for listing, clear errors."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from labs import registry
from labs.errors import DuplicateLab, LabNotFound, PluginError


def test_builtin_labs_are_entry_points():
    reg = registry.discover()
    for name in ("perceptron-gates", "xor-mlp", "digits-mlp"):
        spec = reg.get(name)
        assert spec.builtin and spec.dist == registry.BUILTIN_DIST
        assert spec.summary and "supervised" in spec.tags


def test_listing_imports_no_heavy_module():
    code = ("import sys; from labs.cli import main; main(['list']); "
            "heavy = [m for m in ('torch', 'wandb', 'lime', 'sklearn', 'matplotlib') "
            "if m in sys.modules]; print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "digits-mlp" in out
    assert "HEAVY []" in out


def test_unknown_lab_did_you_mean():
    with pytest.raises(LabNotFound) as e:
        registry.discover().get("digit-mlp")
    assert "did you mean: digits-mlp" in str(e.value).lower()
    assert "lab list" in str(e.value)


class _EP:
    """Stand-in for importlib.metadata.EntryPoint."""

    def __init__(self, name, value, dist):
        self.name, self.value = name, value
        self.dist = type("D", (), {"metadata": {"Name": dist}})()


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    """A plugin package made in a temp dir, plus a broken and a duplicate registration."""
    pkg = tmp_path / "fakeplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(
        "from labs import Lab\n\n\nclass Good(Lab):\n    '''A fake lab.'''\n\n"
        "    tags = ('fake',)\n\n    def run(self, cfg, run):\n        return {'x': 1.0}\n")
    (pkg / "missing_dep.py").write_text("import not_a_real_package_xyz\n\n\nclass L:\n    pass\n")
    (pkg / "explodes.py").write_text("raise RuntimeError('boom at import')\n\nclass L:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = metadata.entry_points(group="labs")
    fakes = [
        _EP("fake-good", "fakeplug.good:Good", "fake-dist"),
        _EP("fake-missing", "fakeplug.missing_dep:L", "fake-dist"),
        _EP("fake-explodes", "fakeplug.explodes:L", "fake-dist"),
        _EP("fake-nomodule", "fakeplug.nothere:L", "fake-dist"),
        _EP("digits-mlp", "fakeplug.good:Good", "copycat-dist"),
        _EP("twice", "fakeplug.good:Good", "dist-a"),
        _EP("twice", "fakeplug.good:Good", "dist-b"),
    ]
    monkeypatch.setattr(registry.metadata, "entry_points",
                        lambda group: list(real) + fakes)
    return fakes


def test_fake_plugin_is_found_and_loads(fake_plugins):
    reg = registry.discover()
    spec = reg.get("fake-good")
    assert not spec.builtin and spec.summary == "A fake lab." and spec.tags == ("fake",)
    assert spec.load().name == "fake-good"
    assert [s.name for s in reg.select(tag="fake")] == ["fake-good"]
    assert [s.name for s in reg.select("fake-*")] == ["fake-explodes", "fake-good"]


def test_broken_plugins_are_reported_not_raised(fake_plugins):
    reg = registry.discover()
    broken = {s.name: s.problem for s in reg.broken}
    assert "not_a_real_package_xyz" in broken["fake-missing"]
    assert "not installed" in broken["fake-nomodule"]
    with pytest.raises(PluginError, match="not_a_real_package_xyz"):
        reg.get("fake-missing")
    # an error raised at import time shows up when the lab is loaded, as one clear error
    with pytest.raises(PluginError, match="boom at import"):
        reg.get("fake-explodes").load()


def test_duplicates_name_both_sources(fake_plugins):
    reg = registry.discover()
    # a plugin copying a built-in name is refused; the built-in keeps it
    assert reg.get("digits-mlp").builtin
    refused = [s for s in reg.broken if s.name == "digits-mlp"]
    assert refused and "copycat-dist" == refused[0].dist
    assert registry.BUILTIN_DIST in refused[0].problem
    # two plugins with one name: an error naming both
    with pytest.raises(DuplicateLab) as e:
        reg.get("twice")
    assert "dist-a" in str(e.value) and "dist-b" in str(e.value)


def test_list_shows_broken_and_duplicates_on_their_own_lines(fake_plugins, cli):
    code, out, _ = cli("list")
    assert code == 0
    lines = out.splitlines()
    assert any(ln.startswith("fake-good") and "[plugin: fake-dist]" in ln for ln in lines)
    assert any(ln.startswith("fake-missing") and "BROKEN" in ln for ln in lines)
    assert any(ln.startswith("twice") and "dist-a" in ln and "dist-b" in ln for ln in lines)
    assert any(ln.startswith("xor-mlp") for ln in lines)


def test_plugin_autoload_control(fake_plugins):
    reg = registry.discover({"LAB_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "fake-good" not in reg.labs and "digits-mlp" in reg.labs and not reg.broken
    reg = registry.discover({"LAB_PLUGINS": "dist-a"})
    assert "twice" in reg.labs and "fake-good" not in reg.labs
    reg = registry.discover({"LAB_PLUGINS": "fake-good"})
    builtin = {s.name for s in reg.labs.values() if s.builtin}
    assert {"digits-mlp", "xor-mlp", "perceptron-gates"} <= builtin
    assert set(reg.labs) == {"fake-good"} | builtin  # the one plugin named, and the built-ins


def test_locate_reads_the_filesystem_and_imports_no_package(tmp_path, monkeypatch):
    pkg = tmp_path / "initbomb" / "inner"
    pkg.mkdir(parents=True)
    (tmp_path / "initbomb" / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (pkg / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (pkg / "mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = registry.locate("initbomb.inner.mod")
    assert spec.origin == str(pkg / "mod.py")
    assert registry.locate("initbomb.inner.nothere") is None
    assert registry.locate("initbomb.inner.mod.deeper") is None  # a module is not a package
    assert registry.locate("not_a_real_package_xyz.mod") is None
    assert "initbomb" not in sys.modules and "initbomb.inner" not in sys.modules


def test_lab_without_run_is_refused_when_listed_and_when_loaded(tmp_path, monkeypatch):
    (tmp_path / "norunplug.py").write_text(
        "from labs import Lab\n\n\nclass Plain(Lab):\n    '''No run.'''\n\n\n"
        "class Base:\n    pass\n\n\nclass Mixed(Base, Lab):\n    '''No run either.'''\n\n\n"
        "class Inherits(Mixed):\n    def run(self, cfg, run):\n        return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plain = registry._describe("plain", "norunplug:Plain", "d")
    assert plain.problem == f"norunplug:Plain {registry.NO_RUN}"
    mixed = registry._describe("mixed", "norunplug:Mixed", "d")
    assert mixed.problem == ""  # a base might define run(): only an import can tell
    with pytest.raises(PluginError, match="norunplug:Mixed does not implement run"):
        mixed.load()
    assert registry._describe("ok", "norunplug:Inherits", "d").load().__name__ == "Inherits"


def test_skim_reads_the_class_alone_and_falls_back_to_the_whole_file():
    """`lab list` parses a lab file's header and class only; a cut that does not parse (a
    column-0 line inside the class) falls back to the whole file, with the same answer."""
    import ast

    from labs.registry import _class_info, _skim

    plain = ('"""Doc."""\nimport os\n\n\ndef helper():\n    return (\n1)\n\n\n'
             'class Mine(Lab):\n    """Summary line."""\n    tags = ("a", "b")\n\n'
             '    def run(self, cfg, run):\n        pass\n\n\nX = 1\n')
    tree = _skim(plain, "Mine", "<plain>")
    assert [type(n).__name__ for n in tree.body] == ["Expr", "Import", "ClassDef"]
    odd = plain.replace('    tags = ("a", "b")\n', '    tags = ("a", "b")\n    s = """\nx"""\n')
    tree = _skim(odd, "Mine", "<odd>")
    assert any(isinstance(n, ast.FunctionDef) for n in tree.body)  # the whole file
    for t in (_skim(plain, "Mine", "p"), tree):
        cls = next(n for n in t.body if isinstance(n, ast.ClassDef))
        assert _class_info(cls) == ("Summary line.", ("a", "b"))


def _plugin(tmp_path, monkeypatch, source: str, name="cachedlab"):
    pkg = tmp_path / "cacheplug"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    path = pkg / "lab.py"
    path.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group: [_EP(name, "cacheplug.lab:Mine", "cache-dist")])
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / ".lab-cache"))  # this test's own
    monkeypatch.setattr(registry, "_CACHE", registry.SourceCache())  # a fresh process's
    return path


_MINE = ('from labs import Lab\n\n\nclass Mine(Lab):\n    """{doc}"""\n\n'
         '    def run(self, cfg, run):\n        return {{}}\n')


def test_lab_sources_are_parsed_once_per_version(tmp_path, monkeypatch):
    """`lab list` parses each lab's source once; later listings read the cache file."""
    _plugin(tmp_path, monkeypatch, _MINE.format(doc="First summary."))
    assert registry.discover().get("cachedlab").summary == "First summary."
    assert (tmp_path / ".lab-cache" / "registry-v1.json").is_file()

    def no_parsing(*a):
        raise AssertionError("parsed again")

    monkeypatch.setattr(registry, "_CACHE", registry.SourceCache())
    with monkeypatch.context() as m:
        m.setattr(registry, "_skim", no_parsing)
        assert registry.discover().get("cachedlab").summary == "First summary."
    # an edited file is parsed again
    _plugin(tmp_path, monkeypatch, _MINE.format(doc="A longer, second summary."))
    assert registry.discover().get("cachedlab").summary == "A longer, second summary."


def test_a_cached_lab_whose_dependency_vanished_is_still_reported(tmp_path, monkeypatch):
    src = "import colorsys\n" + _MINE.format(doc="Needs colorsys.")
    _plugin(tmp_path, monkeypatch, src)
    assert registry.discover().get("cachedlab").summary == "Needs colorsys."
    monkeypatch.setattr(registry, "_CACHE", registry.SourceCache())
    real = registry.importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec",
                        lambda n, *a: None if n == "colorsys" else real(n, *a))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    reg = registry.discover()
    (broken,) = [b for b in reg.broken if b.name == "cachedlab"]
    assert "imports colorsys, which is not installed" in broken.problem


def test_a_dependency_installed_after_a_listing_is_found_by_the_next(tmp_path, monkeypatch):
    # discover() asks each top-level import once per call; the next call asks again
    src = "import late_pkg_xyz\n" + _MINE.format(doc="Needs late_pkg_xyz.")
    _plugin(tmp_path, monkeypatch, src)
    (broken,) = [b for b in registry.discover().broken if b.name == "cachedlab"]
    assert "imports late_pkg_xyz, which is not installed" in broken.problem
    (tmp_path / "late_pkg_xyz.py").write_text("")
    registry.importlib.invalidate_caches()
    assert registry.discover().get("cachedlab").summary == "Needs late_pkg_xyz."


def test_a_corrupt_or_unwritable_cache_only_means_parsing(tmp_path, monkeypatch):
    cache_dir = tmp_path / ".lab-cache"
    cache_dir.mkdir()
    (cache_dir / "registry-v1.json").write_text("{not json")
    _plugin(tmp_path, monkeypatch, _MINE.format(doc="Fine anyway."))
    assert registry.discover().get("cachedlab").summary == "Fine anyway."
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LAB_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(registry, "_CACHE", registry.SourceCache())
    assert registry.discover().get("cachedlab").summary == "Fine anyway."
