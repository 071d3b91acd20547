"""`lab new`: the plugin package it writes, the names it refuses, and that the package works
once installed: `lab list` shows it, `lab run` runs it, and its own tests pass."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import pytest
from plugin_helpers import EXAMPLE, MOONS, env_with, lab, listed, make_dist, non_public_uses

from labs.errors import LabError
from labs.scaffold import new_plugin


def read_toml(path):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads(path.read_text())


FILES = {"pyproject.toml", "README.md", "my_lab/__init__.py", "my_lab/lab.py",
         "tests/test_my_lab.py"}


def test_new_plugin_writes_a_package(tmp_path):
    pkg = new_plugin("my-lab", tmp_path)
    assert pkg == tmp_path / "my-lab"
    assert {str(p.relative_to(pkg)) for p in pkg.rglob("*") if p.is_file()} == FILES

    project = read_toml(pkg / "pyproject.toml")
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["name"] == "my-lab"
    assert project["project"]["dependencies"] == ["lab-framework"]
    assert project["project"]["entry-points"]["labs"] == {"my-lab": "my_lab.lab:MyLab"}

    source = (pkg / "my_lab" / "lab.py").read_text()
    tree = ast.parse(source)
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MyLab"]
    assigned = {t.id: ast.literal_eval(n.value) for n in cls.body if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    assert assigned["explains"] == "tabular"
    assert {f.name for f in cls.body if isinstance(f, ast.FunctionDef)} == {"data", "model",
                                                                             "run"}
    assert non_public_uses(source) == []  # a plugin imports nothing private
    for f in ("run.fit", "run.figure", "plots.curves", "datasets.from_arrays", "models.mlp",
              "option("):
        assert f in source
    test = (pkg / "tests" / "test_my_lab.py").read_text()
    assert 'run("my-lab", track=False' in test and "@pytest.mark.slow" in test
    ast.parse(test)
    readme = (pkg / "README.md").read_text()
    assert readme.startswith("# my-lab") and "lab run my-lab" in readme and "$" not in readme


def test_dashes_become_underscores_and_a_class_name(tmp_path):
    pkg = new_plugin("mnist-cnn2", tmp_path / "deep" / "er")  # missing parents are made
    project = read_toml(pkg / "pyproject.toml")
    assert project["project"]["entry-points"]["labs"] == {"mnist-cnn2": "mnist_cnn2.lab:MnistCnn2"}
    assert (pkg / "mnist_cnn2" / "lab.py").is_file()
    assert (pkg / "tests" / "test_mnist_cnn2.py").is_file()


@pytest.mark.parametrize("name", ["My-Lab", "1lab", "my_lab", "my lab", "", "-lab", "lab-",
                                  "my--lab", "a/b", "../up", "läb"])
def test_invalid_names_are_refused_with_one_line(tmp_path, name):
    with pytest.raises(LabError) as e:
        new_plugin(name, tmp_path / "out")
    assert "invalid lab name" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, fragment", [
    ("digits-mlp", "lab 'digits-mlp' already exists (lab-framework"),  # a lab of that name
    ("json", "a Python module named 'json' is already installed"),  # would shadow a module
])
def test_names_already_taken_are_refused(tmp_path, name, fragment):
    with pytest.raises(LabError) as e:
        new_plugin(name, tmp_path)
    assert fragment in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(LabError, match="unknown template kind 'rl'"):
        new_plugin("my-agent", tmp_path, kind="rl")


def test_an_existing_directory_is_never_overwritten(tmp_path):
    (tmp_path / "my-lab").mkdir()
    (tmp_path / "my-lab" / "notes.txt").write_text("mine")
    with pytest.raises(LabError, match="already exists") as e:
        new_plugin("my-lab", tmp_path)
    assert str(tmp_path / "my-lab") in str(e.value)
    assert [p.name for p in (tmp_path / "my-lab").iterdir()] == ["notes.txt"]
    assert (tmp_path / "my-lab" / "notes.txt").read_text() == "mine"


def test_cli_new(cli, tmp_path):
    code, out, err = cli("new", "my-lab", "--dir", str(tmp_path / "plugins"))
    assert code == 0, err
    assert f"created {tmp_path / 'plugins' / 'my-lab'}" in out
    assert (tmp_path / "plugins" / "my-lab" / "my_lab" / "lab.py").is_file()
    code, out, err = cli("new", "my-lab", "--dir", str(tmp_path / "plugins"))
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "already exists" in line


# Words of the lab the templates were first written for, or of other example labs.
FOREIGN = ("iris", "flower", "sepal", "petal", "measurement", "moons", "digits", "my-lab",
           "my_lab", "mylab", "4 -> hidden -> 3")


def test_every_text_speaks_of_the_new_lab(tmp_path):
    pkg = new_plugin("wine-mlp", tmp_path)
    files = {str(p.relative_to(pkg)): p.read_text() for p in pkg.rglob("*") if p.is_file()}
    assert len(files) == 5
    for rel, text in files.items():
        low = text.lower()
        assert [w for w in FOREIGN if w in low] == [], rel
        assert "$" not in text.replace("$ ", ""), rel  # every placeholder filled
        assert "wine-mlp" in text or "wine_mlp" in text, rel
    for rel in ("README.md", "wine_mlp/lab.py", "pyproject.toml"):
        assert "supervised" in files[rel], rel
    tree = ast.parse(files["wine_mlp/lab.py"])
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "WineMlp"]
    summary = ast.get_docstring(cls).splitlines()[0]
    assert summary.startswith("The wine-mlp lab: a supervised")  # what `lab list` shows


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_dir_that_is_a_file_is_one_line_exit_2(cli, tmp_path, where):
    (tmp_path / "file").write_text("not a folder")
    code, out, err = cli("new", "x-lab", "--dir", str(tmp_path / where))
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line == (f"error: cannot create {tmp_path / where / 'x-lab'}: {tmp_path / 'file'} "
                    f"is a file, not a folder (give --dir a folder)")
    assert (tmp_path / "file").read_text() == "not a folder"


# -- the generated package, made discoverable, through the real `lab` command ---------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """`lab new my-lab` run as a user runs it, plus its dist-info on a site folder."""
    root = tmp_path_factory.mktemp("scaffold")
    res = lab("new", "my-lab", "--dir", str(root), env=env_with(), cwd=root)
    assert res.returncode == 0, res.stderr
    make_dist(root / "site", "my-lab", {"my-lab": "my_lab.lab:MyLab"})
    return root / "my-lab", root / "site"


def test_generated_lab_is_listed_and_runs(generated, tmp_path):
    pkg, site = generated
    env = env_with(site, pkg, LAB_RUNS_DIR=str(tmp_path / "runs"))
    rows = listed(lab("list", env=env).stdout)
    assert rows["my-lab"][0].endswith("[plugin: my-lab]")
    assert "digits-mlp" in rows
    res = lab("run", "my-lab", "--no-track", "--set", "epochs=20", "--set", "hidden=[8]",
              "--no-explain", env=env)
    assert res.returncode == 0, res.stderr
    (run_dir,) = (tmp_path / "runs" / "my-lab").iterdir()
    assert "hidden:\n  - 8" in (run_dir / "config.yaml").read_text()
    assert (run_dir / "figures" / "confusion.png").is_file()
    acc = float(next(line.split()[1] for line in res.stdout.splitlines()
                     if line.strip().startswith("test_acc")))
    assert acc >= 0.8  # the example data is easy: 20 epochs are enough


def test_generated_tests_pass(generated):
    pkg, site = generated
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         cwd=pkg, env=env_with(site, pkg), capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 passed" in res.stdout


# -- a real installation with pip ------------------------------------------------------------


def pip_install(src, target):
    """`pip install` a package folder into `target`, offline, without touching the venv."""
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_pip_installed_plugins_are_found_and_run(tmp_path):
    pytest.importorskip("setuptools")
    res = lab("new", "my-lab", "--dir", str(tmp_path), env=env_with())
    assert res.returncode == 0, res.stderr
    example = shutil.copytree(EXAMPLE, tmp_path / "lab-moons")  # keep build/ out of the repo
    site = tmp_path / "site"
    pip_install(tmp_path / "my-lab", site)
    pip_install(example, site)
    assert sorted(p.name for p in site.glob("*.dist-info")) == [
        "lab_moons-0.1.0.dist-info", "my_lab-0.1.0.dist-info"]

    env = env_with(site, LAB_RUNS_DIR=str(tmp_path / "runs"))  # no source folder on the path
    rows = listed(lab("list", env=env).stdout)
    assert rows["my-lab"][0].endswith("[plugin: my-lab]")
    assert rows["moons-mlp"][0].endswith("[plugin: lab-moons]")
    for name in (*MOONS, "my-lab"):
        res = lab("run", name, "--no-track", "--epochs", "5", "--no-explain", env=env)
        assert res.returncode == 0, res.stderr
        assert "test_acc" in res.stdout
    where = subprocess.run([sys.executable, "-c", "import lab_moons, my_lab; "
                            "print(lab_moons.__file__); print(my_lab.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert all(line.startswith(str(site)) for line in where.splitlines())  # the installed copies
