"""Third-party labs end to end: the example plugin `lab-moons` (examples/plugin), broken and
copycat plugins, the plugin control variables, and the rule that built-in labs use nothing but
the public API a plugin uses.

A plugin is made discoverable the way `pip install` leaves it, minus the copying: its
`*.dist-info` folder and its source on PYTHONPATH (see plugin_helpers.py). The `lab` command
runs in a fresh interpreter, as a user runs it; checks that only need "the other labs still
run" run the CLI in-process, which is several seconds faster than a new interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from plugin_helpers import (
    EXAMPLE,
    MOONS,
    ROOT,
    env_with,
    lab,
    listed,
    make_dist,
    make_module,
    non_public_uses,
)

import labs

BUILTINS = ("digits-mlp", "perceptron-gates", "xor-mlp")


@pytest.fixture
def site(tmp_path):
    """A folder on PYTHONPATH holding the dist-info of `lab-moons` (plus what a test adds)."""
    path = tmp_path / "site"
    make_dist(path, "lab-moons", MOONS)
    return path


@pytest.fixture
def on_path(site, monkeypatch):
    """`site` and the example's source on this interpreter's sys.path (in-process CLI)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(site))
    return site


def summary_of(runs: Path, name: str) -> dict:
    (run_dir,) = (runs / name).iterdir()
    return json.loads((run_dir / "summary.json").read_text())


# -- the example plugin ----------------------------------------------------------------------


def test_example_plugin_is_listed_as_a_plugin(site):
    res = lab("list", env=env_with(site, EXAMPLE))
    assert res.returncode == 0, res.stderr
    rows = listed(res.stdout)
    assert rows["moons-mlp"][0].startswith("MLP on scikit-learn's two moons")
    assert rows["moons-mlp"][0].endswith("[plugin: lab-moons]")
    for name in BUILTINS:
        assert name in rows and "plugin" not in rows[name][0]
    assert not any("BROKEN" in line for line in res.stdout.splitlines())

    res = lab("list", "--tag", "example", env=env_with(site, EXAMPLE))
    assert list(listed(res.stdout)) == ["moons-mlp"]


def test_example_plugin_info_shows_source_and_config_table(site):
    res = lab("info", "moons-mlp", env=env_with(site, EXAMPLE))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("moons-mlp: MLP on scikit-learn's two moons")
    assert "source:   lab-moons (third-party plugin), lab_moons.lab:MoonsMLP" in out
    assert "explains: tabular" in out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()
             if line.startswith("  ") and len(line.split()) >= 3}
    assert table["n_samples"][:3] == ["int", "600", "points"]
    assert table["hidden"][:3] == ["list[int]", "[32,", "32]"]
    assert table["epochs"][:2] == ["int", "60"]  # the lab's own default overrides TrainConfig's
    assert table["seed"][:2] == ["int", "0"]  # ...and TrainConfig's keys are all there


def test_example_plugin_runs_learns_and_explains(site, tmp_path):
    runs = tmp_path / "runs"
    res = lab("run", "moons-mlp", "--no-track", "--set", "epochs=30", "--set",
              "explain_num_samples=300", env=env_with(site, EXAMPLE, LAB_RUNS_DIR=str(runs)))
    assert res.returncode == 0, res.stderr
    assert "test_acc" in res.stdout
    (run_dir,) = (runs / "moons-mlp").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["headline"] == "test_acc"
    assert summary["metrics"]["test_acc"] >= 0.85  # it learned the curved border
    assert 0.0 <= summary["metrics"]["explain_r2"] <= 1.0
    assert {"curves.png", "decision_boundary.png"} <= {p.name for p in
                                                        (run_dir / "figures").iterdir()}
    meta = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert meta["config"]["epochs"] == 30 and meta["versions"]["lab-moons"] == "0.1.0"
    # the plugin's own subjects(): LIME explains the least certain test points first
    probs = [json.loads((run_dir / "explanations" / f"sample_{i}.json").read_text())
             ["probability"] for i in range(3)]
    assert probs == sorted(probs)
    assert (run_dir / "explanations" / "sample_0.png").is_file()


def test_builtin_labs_run_alongside_the_plugin(on_path, cli, runs_dir):
    code, out, err = cli("run", "xor-mlp", "--no-track", "--epochs", "2", "--no-explain")
    assert code == 0, err
    assert summary_of(runs_dir, "xor-mlp")["status"] == "completed"
    code, out, _ = cli("info", "xor-mlp")
    assert "source:   lab-framework (built-in), supervised.xor:XorMLP" in out


# -- broken and copycat plugins --------------------------------------------------------------


@pytest.fixture
def broken_site(site):
    """Next to lab-moons: a plugin missing a dependency, one whose import fails, one whose
    module is not there at all."""
    make_module(site, "broken_plugin.lab",
                "import not_a_real_package_xyz\n\nfrom labs import Lab\n\n\n"
                "class BrokenLab(Lab):\n    '''Needs a package that is not installed.'''\n")
    make_dist(site, "lab-broken", {"broken-lab": "broken_plugin.lab:BrokenLab"})
    make_module(site, "crashing_plugin.lab",
                "from labs import Lab\n\nraise ImportError('crashing_plugin needs libfoo.so')\n\n\n"
                "class CrashingLab(Lab):\n    '''Fails only when imported.'''\n\n"
                "    def run(self, cfg, run):\n        return {}\n")
    make_dist(site, "lab-crashing", {"crashing-lab": "crashing_plugin.lab:CrashingLab"})
    make_dist(site, "lab-ghost", {"ghost-lab": "ghost_plugin.lab:GhostLab"})
    return site


def test_broken_plugins_are_listed_on_their_own_lines(broken_site):
    res = lab("list", env=env_with(broken_site, EXAMPLE))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    rows = listed(res.stdout)
    assert rows["broken-lab"] == [
        "BROKEN (lab-broken): broken_plugin.lab imports not_a_real_package_xyz, which is not "
        "installed"]
    assert len(rows["ghost-lab"]) == 1 and rows["ghost-lab"][0].startswith("BROKEN (lab-ghost)")
    # an import-time failure cannot be seen without importing: listed, refused when run
    assert rows["crashing-lab"] == ["Fails only when imported.  [plugin: lab-crashing]"]
    for name in (*BUILTINS, "moons-mlp"):
        assert len(rows[name]) == 1 and "BROKEN" not in rows[name][0]
    assert sum("BROKEN" in line for line in lines) == 2


GOOD_LAB = ("from labs import Lab\n\n\nclass {cls}(Lab):\n    '''{doc}'''\n\n"
            "    def run(self, cfg, run):\n        return {{'x': 1.0}}\n")


@pytest.fixture
def tricky_site(site):
    """Plugins that only fail when their package is imported, and Lab classes without run()."""
    make_module(site, "boom_pkg.lab", GOOD_LAB.format(cls="BoomLab", doc="Package init fails."))
    (site / "boom_pkg" / "__init__.py").write_text("raise RuntimeError('boom in __init__')\n")
    make_dist(site, "lab-boom", {"boom-lab": "boom_pkg.lab:BoomLab"})
    make_module(site, "heavy_pkg.lab", GOOD_LAB.format(cls="HeavyLab", doc="Package has torch."))
    (site / "heavy_pkg" / "__init__.py").write_text("import torch  # noqa: F401\n")
    make_dist(site, "lab-heavy", {"heavy-lab": "heavy_pkg.lab:HeavyLab"})
    make_module(site, "norun_plugin.lab", "from labs import Lab\n\n\nclass NoRun(Lab):\n"
                "    '''Forgot run().'''\n\n    def data(self, cfg):\n        return None\n")
    make_module(site, "norun_plugin.mixed", "from labs import Lab\n\n\nclass Mixin:\n"
                "    pass\n\n\nclass MixedNoRun(Mixin, Lab):\n    '''Forgot run() too.'''\n")
    make_dist(site, "lab-norun", {"norun-lab": "norun_plugin.lab:NoRun",
                                  "mixed-norun": "norun_plugin.mixed:MixedNoRun"})
    return site


def test_listing_never_imports_a_plugin_package(tricky_site):
    code = ("import sys; from labs.cli import main; main(['list']); "
            "print('TORCH', 'torch' in sys.modules, 'boom_pkg' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], env=env_with(tricky_site, EXAMPLE),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "TORCH False False" in res.stdout
    rows = listed(res.stdout)
    # an __init__ that fails or imports torch is not run: the labs are listed from source
    assert rows["boom-lab"] == ["Package init fails.  [plugin: lab-boom]"]
    assert rows["heavy-lab"] == ["Package has torch.  [plugin: lab-heavy]"]
    # a Lab without run() is seen in its source
    assert rows["norun-lab"] == ["BROKEN (lab-norun): norun_plugin.lab:NoRun does not implement "
                                 "run(self, cfg, run)"]
    assert rows["mixed-norun"] == ["Forgot run() too.  [plugin: lab-norun]"]  # needs an import
    for name in (*BUILTINS, "moons-mlp"):
        assert len(rows[name]) == 1 and "BROKEN" not in rows[name][0]


@pytest.mark.parametrize("name, fragment", [
    ("boom-lab", "lab 'boom-lab' (lab-boom) failed to import: RuntimeError: boom in __init__"),
    ("norun-lab", "lab 'norun-lab' (lab-norun) cannot be used: norun_plugin.lab:NoRun does not "
                  "implement run(self, cfg, run)"),
    ("mixed-norun", "lab 'mixed-norun' (lab-norun): norun_plugin.mixed:MixedNoRun does not "
                    "implement run(self, cfg, run)"),
], ids=["init-raises", "no-run-seen-in-source", "no-run-seen-on-load"])
def test_tricky_plugins_are_refused_with_one_line(tricky_site, tmp_path, name, fragment):
    runs = tmp_path / "runs"
    res = lab("run", name, "--no-track", env=env_with(tricky_site, EXAMPLE,
                                                       LAB_RUNS_DIR=str(runs)))
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: ") and fragment in line
    assert not (runs / name).exists()


def test_other_labs_run_next_to_tricky_plugins(tricky_site, on_path, cli, runs_dir):
    code, out, err = cli("run", "xor-mlp", "--no-track", "--epochs", "2", "--no-explain")
    assert code == 0, err
    assert summary_of(runs_dir, "xor-mlp")["status"] == "completed"


@pytest.mark.parametrize("name, fragment", [
    ("broken-lab", "lab 'broken-lab' (lab-broken) cannot be used: broken_plugin.lab imports "
                   "not_a_real_package_xyz"),
    ("crashing-lab", "lab 'crashing-lab' (lab-crashing) failed to import: ImportError: "
                     "crashing_plugin needs libfoo.so"),
    ("ghost-lab", "lab 'ghost-lab' (lab-ghost) cannot be used"),
], ids=["missing-dependency", "import-error", "no-module"])
def test_running_a_broken_plugin_exits_2_with_one_line(broken_site, tmp_path, name, fragment):
    runs = tmp_path / "runs"
    res = lab("run", name, "--no-track", env=env_with(broken_site, EXAMPLE,
                                                       LAB_RUNS_DIR=str(runs)))
    assert res.returncode == 2
    assert res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: ") and fragment in line
    assert not (runs / name).exists()  # refused before a run directory is made


def test_other_labs_run_next_to_broken_plugins(broken_site, on_path, cli, runs_dir):
    code, out, err = cli("run", "moons-mlp", "--no-track", "--epochs", "2", "--no-explain")
    assert code == 0, err
    assert summary_of(runs_dir, "moons-mlp")["status"] == "completed"
    code, out, err = cli("run", "xor-mlp", "--no-track", "--epochs", "2", "--no-explain")
    assert code == 0, err


def test_plugin_taking_a_builtin_name_is_refused_naming_both(site, on_path, cli, runs_dir):
    make_dist(site, "lab-copycat", {"digits-mlp": "lab_moons.lab:MoonsMLP"})
    res = lab("list", env=env_with(site, EXAMPLE))
    rows = listed(res.stdout)
    assert res.returncode == 0
    assert len(rows["digits-mlp"]) == 2
    builtin, refused = sorted(rows["digits-mlp"], key=lambda r: "BROKEN" in r)
    assert builtin.startswith("Dense network") and "plugin" not in builtin
    assert refused == ("BROKEN (lab-copycat): name already registered by lab-framework "
                       "(supervised.digits:DigitsMLP)")

    code, out, _ = cli("info", "digits-mlp")  # the built-in keeps its name...
    assert "source:   lab-framework (built-in), supervised.digits:DigitsMLP" in out
    code, out, err = cli("run", "digits-mlp", "--no-track", "--epochs", "1", "--no-explain")
    assert code == 0, err  # ...and still runs
    assert "train_acc" in summary_of(runs_dir, "digits-mlp")["metrics"]  # DigitsMLP's metrics


# -- plugin control --------------------------------------------------------------------------


@pytest.mark.parametrize("variables, shown, hidden", [
    ({}, {"moons-mlp", "other-lab"}, set()),
    ({"LAB_DISABLE_PLUGIN_AUTOLOAD": "1"}, set(), {"moons-mlp", "other-lab"}),
    ({"LAB_PLUGINS": "lab-moons"}, {"moons-mlp"}, {"other-lab"}),
    ({"LAB_PLUGINS": "other-lab"}, {"other-lab"}, {"moons-mlp"}),  # a lab name works too
    ({"LAB_DISABLE_PLUGIN_AUTOLOAD": "1", "LAB_PLUGINS": "lab-moons"}, {"moons-mlp"},
     {"other-lab"}),  # named plugins load even with autoload off (like pytest's -p)
], ids=["default", "autoload-off", "only-dist", "only-lab", "autoload-off-but-named"])
def test_plugin_control_variables(site, variables, shown, hidden):
    make_dist(site, "lab-other", {"other-lab": "lab_moons.lab:MoonsMLP"})
    res = lab("list", env=env_with(site, EXAMPLE, **variables))
    assert res.returncode == 0, res.stderr
    rows = listed(res.stdout)
    assert set(BUILTINS) <= set(rows)  # the built-in labs are never switched off
    assert shown <= set(rows) and not hidden & set(rows)


def test_disabled_plugin_is_an_unknown_lab(site):
    env = env_with(site, EXAMPLE, LAB_DISABLE_PLUGIN_AUTOLOAD="1")
    res = lab("run", "moons-mlp", "--no-track", env=env)
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert "unknown lab 'moons-mlp'" in line and "lab list" in line


# -- built-in labs use the public API only, like a plugin -----------------------------------


LAB_SOURCES = sorted(
    p for pkg in ("supervised", "generative", "agents") if (ROOT / pkg).is_dir()
    for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", LAB_SOURCES + sorted(EXAMPLE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_labs_import_only_the_public_api(path):
    assert non_public_uses(path.read_text(), str(path.relative_to(ROOT))) == []


def test_the_public_api_check_catches_private_imports():
    source = ("from labs import Lab, option\nfrom labs.trainer import Trainer\nimport labs.data\n"
              "from labs import rundir\nfrom labs import datasets\nimport labs\n"
              "datasets._split(1)\nlabs.runner\nlabs.datasets.digits\n")
    assert sorted(p.split(": ", 1)[1] for p in non_public_uses(source)) == [
        "datasets._split", "from labs.trainer import ...", "import labs.data",
        "labs.rundir is not public", "labs.runner"]


def test_every_public_name_resolves():
    for name in labs.__all__:
        assert getattr(labs, name) is not None, name
