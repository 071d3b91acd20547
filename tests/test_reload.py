"""Reloading saved runs without retraining: `lab eval`, several models per run, and a lab with
its own `save` / `load` (a vocabulary and numpy state beside the weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from plugin_helpers import make_dist, make_module

TEST_LABS = '''
"""Labs for tests/test_reload.py."""

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
from torch import nn

from labs import Lab, Split, TrainConfig, checkpoint, datasets, models, option, variants


@dataclass
class Config(TrainConfig):
    epochs: int = option(40, "passes")
    lr: float = option(0.05, "learning rate")
    batch_size: int = option(4, "full batch")


class TwinLab(Lab):
    """Two MLPs of different widths learn XOR in one run."""

    tags = ("test",)
    explains = "tabular"
    Config = Config

    def data(self, cfg):
        return datasets.logic_gate("XOR")

    def model(self, cfg, data):
        return {"narrow": models.mlp(2, [4], 2, "tanh"), "wide": models.mlp(2, [16], 2, "tanh")}

    def run(self, cfg, run):
        data = self.data(cfg)
        out = {}
        for name, net in self.model(cfg, data).items():
            out[f"{name}/test_acc"] = run.fit(net, data, loss=nn.CrossEntropyLoss(),
                                              name=name).test["acc"]
        return out


class XorMLP(Lab):
    """XOR and an 8-unit MLP: the data and model of the labs below (registered: none)."""

    tags = ("test",)
    Config = Config

    def data(self, cfg):
        return datasets.logic_gate("XOR")

    def model(self, cfg, data):
        return models.mlp(2, [8], 2, "tanh")


class VocabLab(XorMLP):
    """An MLP plus a vocabulary and class counts, saved beside the weights and reloaded."""

    explains = "none"

    def run(self, cfg, run):
        data = self.data(cfg)
        net = self.model(cfg, data)
        fit = run.fit(net, data, loss=nn.CrossEntropyLoss())
        self.vocab = {"<pad>": 0, "x1": 1, "x2": 2}
        self.counts = np.bincount(data.train.y.numpy(), minlength=2)
        return {"test_acc": fit.test["acc"]}

    def save(self, path, models):
        super().save(path, models)
        (path / "checkpoints" / "vocab.json").write_text(json.dumps(self.vocab))
        checkpoint.save({"counts": self.counts}, path / "checkpoints" / "extra.pt")

    def load(self, path, cfg, data):
        models = super().load(path, cfg, data)
        self.vocab = json.loads((path / "checkpoints" / "vocab.json").read_text())
        self.counts = checkpoint.load(path / "checkpoints" / "extra.pt")["counts"]
        return models

    def evaluate(self, cfg, models, data):
        return {**super().evaluate(cfg, models, data), "vocab_size": len(self.vocab),
                "class_1": int(self.counts[1])}


@dataclass
class OwnConfig(Config):
    parts: list[str] = option(["common", "same", "shifted", "again"], "variants to train")


class OwnDataLab(XorMLP):
    """XOR variants with the default hooks; two of them learn it on inputs of their own."""

    explains = "tabular"
    Config = OwnConfig

    def run(self, cfg, run):
        data = self.data(cfg)
        shifted = dataclasses.replace(data, train=Split(data.train.x * 10 + 5, data.train.y),
                                      test=Split(data.test.x * 10 + 5, data.test.y))
        specs = {"common": self.model(cfg, data),
                 "same": variants.Variant(self.model(cfg, data), data=data),  # not its own
                 "shifted": variants.Variant(self.model(cfg, data), data=shifted)}
        first = variants.fit_all(run, {k: v for k, v in specs.items() if k in cfg.parts},
                                 data, loss=nn.CrossEntropyLoss())
        again = {"again": variants.Variant(self.model(cfg, data), data=shifted)}
        second = variants.fit_all(run, {k: v for k, v in again.items() if k in cfg.parts},
                                  data, prefix="more/", loss=nn.CrossEntropyLoss())
        return {f"{p}{n}/test_acc": r.test["acc"]
                for p, res in (("", first), ("more/", second)) for n, r in res.items()}
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("site")
    make_module(path, "reload_test_labs.labs", TEST_LABS)
    make_dist(path, "lab-reload-tests", {"twin-lab": "reload_test_labs.labs:TwinLab",
                                         "vocab-lab": "reload_test_labs.labs:VocabLab",
                                         "own-data-lab": "reload_test_labs.labs:OwnDataLab"})
    return path


@pytest.fixture
def test_labs(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))


def only_run(runs_dir: Path, lab: str) -> Path:
    (path,) = (runs_dir / lab).iterdir()
    return path


def summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())["metrics"]


def test_lab_eval_reports_the_test_accuracy_of_the_run(cli, runs_dir):
    code, _, err = cli("run", "digits-mlp", "--epochs", "3", "--no-track", "--no-explain")
    assert code == 0, err
    path = only_run(runs_dir, "digits-mlp")
    code, out, err = cli("eval", path.name)
    assert code == 0, err
    saved = summary(path)
    assert f"test_acc                 {saved['test_acc']:.4f}" in out
    (written,) = path.glob("eval-*.json")
    result = json.loads(written.read_text())
    assert f"metrics in {written}" in out and result["models"] == [""]
    assert result["metrics"]["test_acc"] == pytest.approx(saved["test_acc"], abs=1e-12)
    assert result["metrics"]["test_loss"] == pytest.approx(saved["test_loss"], rel=1e-5)
    cli("eval", str(path))  # a second evaluation never overwrites the first
    assert len(list(path.glob("eval-*.json"))) == 2


def test_every_model_of_a_run_is_reloaded(cli, runs_dir, test_labs):
    code, _, err = cli("run", "twin-lab", "--no-track", "--no-explain")
    assert code == 0, err
    path = only_run(runs_dir, "twin-lab")
    assert (path / "checkpoints" / "narrow" / "model.pt").is_file()
    code, out, err = cli("eval", path.name)
    assert code == 0, err
    saved = summary(path)
    for name in ("narrow", "wide"):
        assert f"{name}/test_acc" in out
    result = json.loads(next(path.glob("eval-*.json")).read_text())["metrics"]
    assert result["narrow/test_acc"] == saved["narrow/test_acc"]
    assert result["wide/test_acc"] == saved["wide/test_acc"]
    code, out, err = cli("explain", path.name, "--samples", "1")
    assert code == 0, err
    folder = next((path / "explanations").glob("more-*"))
    assert (folder / "narrow" / "sample_0.json").is_file()
    assert (folder / "wide" / "sample_0.json").is_file()


def test_a_lab_saves_and_reloads_its_own_state(cli, runs_dir, test_labs):
    code, _, err = cli("run", "vocab-lab", "--no-track")
    assert code == 0, err
    path = only_run(runs_dir, "vocab-lab")
    assert json.loads((path / "checkpoints" / "vocab.json").read_text())["x2"] == 2
    code, out, err = cli("eval", path.name)
    assert code == 0, err
    result = json.loads(next(path.glob("eval-*.json")).read_text())["metrics"]
    assert result["vocab_size"] == 3 and result["class_1"] == 2  # XOR has two 1s
    assert result["test_acc"] == summary(path)["test_acc"]
    assert "vocab_size" in out


def test_models_trained_on_inputs_of_their_own_are_left_out_by_the_default_hooks(
        cli, runs_dir, test_labs):
    """`variants.fit_all` records the variants with data of their own (two calls add to one
    record); `lab eval` / `lab explain` with the default hooks leave them out, one warning
    line each, instead of scoring them on the lab's common data."""
    import yaml

    code, _, err = cli("run", "own-data-lab", "--no-track", "--no-explain")
    assert code == 0, err
    path = only_run(runs_dir, "own-data-lab")
    meta = yaml.safe_load((path / "config.yaml").read_text())
    assert meta["recorded"] == {"trained_on_own_data": {"shifted": True, "more/again": True}}
    code, out, err = cli("eval", path.name)
    assert code == 0, err
    warned = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warned == [
        f"warning: model '{name}' was trained on inputs of its own (Variant(data=...)): left "
        f"out of lab eval; override OwnDataLab.evaluate to score it on them"
        for name in ("more/again", "shifted")]
    assert err.count("\n") == 2  # one line each, no source lines
    result = json.loads(next(path.glob("eval-*.json")).read_text())
    assert result["models"] == ["common", "same"]
    assert result["left_out"] == ["more/again", "shifted"]
    saved = summary(path)
    assert result["metrics"] == {
        "common/test_acc": saved["common/test_acc"], "same/test_acc": saved["same/test_acc"],
        "common/test_loss": pytest.approx(result["metrics"]["common/test_loss"]),
        "same/test_loss": pytest.approx(result["metrics"]["same/test_loss"])}
    assert "shifted" not in out and "common/test_acc" in out
    code, out, err = cli("explain", path.name, "--samples", "1")
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("warning: ")] == [
        f"warning: model '{name}' was trained on inputs of its own (Variant(data=...)): left "
        f"out of lab explain; override OwnDataLab.subjects to explain it on them"
        for name in ("more/again", "shifted")]
    folder = next((path / "explanations").glob("more-*"))
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["common", "same"]


def test_the_runs_own_explanations_leave_them_out(
        cli, runs_dir, test_labs):
    """At the end of `lab run` too: the variants trained on inputs of their own are not
    explained (one warning each); the others are (on the common data: see
    test_variants' run.data test)."""
    code, _, err = cli("run", "own-data-lab", "--no-track", "--set", "explain_samples=1",
                       "--set", "explain_num_samples=50")
    assert code == 0, err
    path = only_run(runs_dir, "own-data-lab")
    assert [line for line in err.splitlines() if line.startswith("warning: ")] == [
        f"warning: model '{name}' was trained on inputs of its own (Variant(data=...)): left "
        f"out of lab run's explanations; override OwnDataLab.subjects to explain it on them"
        for name in ("more/again", "shifted")]
    explained = path / "explanations"
    assert sorted(p.name for p in explained.iterdir() if p.is_dir()) == ["common", "same"]


def test_one_model_left_keeps_its_name_and_none_left_is_one_line(cli, runs_dir, test_labs):
    code, _, err = cli("run", "own-data-lab", "--no-track", "--no-explain",
                       "--set", "parts=[common,shifted]")
    assert code == 0, err
    (path,) = (runs_dir / "own-data-lab").iterdir()
    code, out, err = cli("eval", path.name)
    assert code == 0 and err.count("warning: ") == 1, err
    result = json.loads(next(path.glob("eval-*.json")).read_text())
    # the default names a lone model's metrics without its name: the run's names are kept
    assert sorted(result["metrics"]) == ["common/test_acc", "common/test_loss"]
    assert result["metrics"]["common/test_acc"] == summary(path)["common/test_acc"]
    code, _, err = cli("run", "own-data-lab", "--no-track", "--no-explain",
                       "--set", "parts=[shifted,again]")
    assert code == 0, err
    (path,) = (p for p in (runs_dir / "own-data-lab").iterdir() if p.name != path.name)
    for command in ("eval", "explain"):
        code, _, err = cli(command, path.name)
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"error: every model of run {path.name} was trained on inputs "
                              f"of its own (Variant(data=...)): nothing for lab {command}")
    assert not list(path.glob("eval-*.json")) and not list(path.glob("explanations/more-*"))


def test_record_merges_dicts_at_every_depth(tmp_path):
    """Several `run.record` calls merge key by key at every depth, in config.yaml, on the
    Run and in what W&B's config gets (its update replaces a key's whole value)."""
    from labs import rundir
    from labs.context import Run

    sent = []

    class Tracker:
        def config(self, values):
            sent.append(values)

    rundir.write_yaml(tmp_path / "config.yaml", {"lab": "x", "config": {},
                                                 "recorded": {"parent": {"lab": "p"}}})
    run = Run("x", "id", tmp_path, None, torch.device("cpu"), Tracker())
    run.record({"own": {"a": True}, "frozen": ["l1"]})
    run.record({"own": {"b/c": True}, "frozen": ["l2"], "parent": {"run_id": "r"}})
    want = {"own": {"a": True, "b/c": True}, "frozen": ["l2"]}
    assert run.recorded == {**want, "parent": {"run_id": "r"}}
    assert rundir.read_yaml(tmp_path / "config.yaml")["recorded"] == {
        **want, "parent": {"lab": "p", "run_id": "r"}}
    assert sent[-1] == {**want, "parent": {"lab": "p", "run_id": "r"}}


def test_default_load_builds_one_model_per_saved_name(tmp_path):
    from labs import Lab
    from labs.errors import CheckpointError

    class One(Lab):
        def data(self, cfg):
            return None

        def model(self, cfg, data):
            return torch.nn.Linear(2, 1)

    nets = {"a": torch.nn.Linear(2, 1), "b": torch.nn.Linear(2, 1)}
    One().save(tmp_path, nets)
    back = One().load(tmp_path, None, None)
    assert sorted(back) == ["a", "b"] and back["a"] is not back["b"]
    for name, net in nets.items():
        assert torch.equal(back[name].weight, net.weight) and not back[name].training
    with pytest.raises(CheckpointError, match="no checkpoint at .*checkpoints/model.pt"):
        One().load(tmp_path / "empty", None, None)
    with pytest.raises(TypeError, match="override save"):
        One().save(tmp_path, {"vocab": {"a": 1}})


def test_eval_of_an_unlabelled_lab_asks_for_its_own_evaluate(tmp_path):
    from labs import Lab, datasets
    from labs.errors import LabError

    data = datasets.from_arrays(np.random.default_rng(0).normal(size=(20, 3)), None)
    with pytest.raises(LabError, match="unlabelled data: its own evaluate"):
        Lab().evaluate(None, {"": torch.nn.Linear(3, 3)}, data)
    labelled = datasets.logic_gate("AND")
    for models in ({"agent": object()}, {"": torch.nn.ModuleDict({"a": torch.nn.Linear(2, 2)})}):
        with pytest.raises(LabError, match="saves no torch model that takes the test inputs"):
            Lab().evaluate(None, models, labelled)


def test_eval_of_a_missing_run_is_one_line(cli):
    code, _, err = cli("eval", "no-such-run")
    assert code == 2 and err.startswith("error: no run 'no-such-run'") and err.count("\n") == 1
