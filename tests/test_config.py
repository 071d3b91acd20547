"""Config parsing: types, lists, files, and the one-line errors users get."""

from __future__ import annotations

import sys
import types
import typing
from dataclasses import dataclass

import pytest
import yaml

from labs import config
from labs.config import TrainConfig, option
from labs.errors import ConfigError


@dataclass
class Cfg(TrainConfig):
    hidden: list[int] = option([64], "widths")
    rates: list[float] = option([0.1], "rates")
    name: str = option("x", "a name")
    frac: float | None = option(None, "optional")


def test_defaults_and_help():
    cfg = config.build(Cfg)
    assert cfg.hidden == [64] and cfg.epochs == 10 and cfg.seed == 0
    infos = {f.name: f for f in config.fields(Cfg)}
    assert infos["hidden"].help == "widths" and infos["hidden"].type_name == "list[int]"
    assert infos["device"].choices == ("auto", "cpu", "cuda", "mps")
    # mutable defaults are not shared between instances
    a, b = config.build(Cfg), config.build(Cfg)
    a.hidden.append(1)
    assert b.hidden == [64]


@pytest.mark.parametrize("raw, key, expected", [
    ("epochs=5", "epochs", 5),
    ("lr=1e-3", "lr", 0.001),
    ("lr=2", "lr", 2.0),
    ("amp=false", "amp", False),
    ("amp=Yes", "amp", True),
    ("hidden=[128,64]", "hidden", [128, 64]),
    ("hidden=[]", "hidden", []),
    ("hidden=32", "hidden", [32]),
    ("rates=[0.5, 1e-2]", "rates", [0.5, 0.01]),
    ("name=hello world", "name", "hello world"),
    ("frac=none", "frac", None),
    ("frac=0.25", "frac", 0.25),
])
def test_set_values(raw, key, expected):
    cfg = config.build(Cfg, config.parse_set([raw]))
    assert getattr(cfg, key) == expected
    assert type(getattr(cfg, key)) is type(expected)


@pytest.mark.parametrize("raw, fragment", [
    ("epochs=2.5", "'epochs'"),
    ("epochs=ten", "is not int"),
    ("amp=maybe", "is not bool"),
    ("hidden=[1,x]", "is not list[int]"),
    ("lr_schedule=linear", "choose one of none, cosine, step"),
])
def test_bad_values_are_one_clear_line(raw, fragment):
    with pytest.raises(ConfigError) as e:
        config.build(Cfg, config.parse_set([raw]))
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_unknown_key_lists_valid_keys_and_types():
    with pytest.raises(ConfigError) as e:
        config.build(Cfg, {"hiden": "3"})
    msg = str(e.value)
    assert "unknown config key 'hiden'" in msg
    assert "hidden (list[int])" in msg and "lr (float)" in msg


def test_set_needs_key_value():
    with pytest.raises(ConfigError, match="key=value"):
        config.parse_set(["epochs"])


def test_yaml_and_toml_files(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("epochs: 3\nhidden: [8, 4]\nlr: 0.5\n")
    t = tmp_path / "c.toml"
    t.write_text("epochs = 4\nhidden = [2]\n")
    assert config.build(Cfg, config.load_file(y)).hidden == [8, 4]
    assert config.build(Cfg, config.load_file(t)).epochs == 4


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        config.load_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        config.load_file(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        config.load_file(listy)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("epochs: many\n")
    with pytest.raises(ConfigError, match="is not int"):
        config.build(Cfg, config.load_file(wrong))


# -- YAML-read values, typed by the field --------------------------------------------------


@dataclass
class Rich(TrainConfig):
    tags: list[str] = option(["a"], "names")
    policy_kwargs: dict = option({"net_arch": [64, 64]}, "passed to the policy")
    widths: dict[str, int] = option({}, "typed mapping")
    layers: list[list[int]] = option([[4]], "nested lists")
    mode: typing.Literal["fast", "slow"] = option("fast", "a Literal choice")
    name: str = option("x", "a name")
    note: str | None = option(None, "optional text")
    pair: tuple[int, float] = option((1, 0.5), "a fixed-length tuple")


@pytest.mark.parametrize("raw, key, expected", [
    ('tags=[a, "b,c"]', "tags", ["a", "b,c"]),
    ("tags=a,b", "tags", ["a", "b"]),
    ("tags=[yes, 1e-3, null]", "tags", ["yes", "1e-3", "null"]),
    ("policy_kwargs={net_arch: [64, 64]}", "policy_kwargs", {"net_arch": [64, 64]}),
    ("policy_kwargs={lr: 1e-3, on: yes, q: '5', n: null, t: true}", "policy_kwargs",
     {"lr": 0.001, "on": "yes", "q": "5", "n": None, "t": True}),
    ("widths={a: 1, b: '2'}", "widths", {"a": 1, "b": 2}),
    ("layers=[[1, 2], [3]]", "layers", [[1, 2], [3]]),
    ("layers=[]", "layers", []),
    ("mode=slow", "mode", "slow"),
    ("name=yes", "name", "yes"),
    ("name=1e-3", "name", "1e-3"),
    ("name=a: b # not a comment", "name", "a: b # not a comment"),
    ("note=null", "note", None),
    ("note=hello", "note", "hello"),
    ("pair=[2, 1e-3]", "pair", (2, 0.001)),
    ("lr=1E-3", "lr", 0.001),
    ("lr=.5", "lr", 0.5),
    ("batch_size=1e3", "batch_size", 1000),
    ("amp=off", "amp", False),
])
def test_set_values_are_read_as_yaml_and_typed_by_the_field(raw, key, expected):
    cfg = config.build(Rich, config.parse_set([raw]))
    value = getattr(cfg, key)
    assert value == expected and type(value) is type(expected)
    if isinstance(value, str):
        yaml.safe_dump(value)  # a plain str: config.yaml can hold it


@pytest.mark.parametrize("raw, fragment", [
    ("mode=medium", "choose one of fast, slow"),
    ("layers=[1, 2]", "is not list[list[int]]"),
    ("layers=[[1, x]]", "is not list[list[int]]"),
    ("policy_kwargs=[1, 2]", "is not dict"),
    ("widths={a: many}", "is not dict[str, int]"),
    ("pair=[1, 2, 3]", "is not tuple[int, float]"),
    ("tags=[a, [b]]", "is not list[str]"),
    ("hidden=[1,", "is not list[int]"),
    ("lr=1e999999", "lr must be a finite number"),
])
def test_bad_structured_values(raw, fragment):
    with pytest.raises(ConfigError) as e:
        config.build(Rich if raw.split("=")[0] != "hidden" else Cfg, config.parse_set([raw]))
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_literal_choices_are_listed():
    infos = {f.name: f for f in config.fields(Rich)}
    assert infos["mode"].choices == ("fast", "slow")


def test_file_values_get_the_same_typing(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lr: 1e-3\nname: yes\ntags: [a, 'b,c']\npolicy_kwargs: {net_arch: [32]}\n"
                 "note: 'null'\n")
    cfg = config.build(Rich, config.load_file(y), source=str(y))
    assert cfg.lr == 0.001 and type(cfg.lr) is float
    assert cfg.name == "yes" and cfg.tags == ["a", "b,c"] and cfg.note == "null"
    assert cfg.policy_kwargs == {"net_arch": [32]}
    t = tmp_path / "c.toml"
    t.write_text('lr = 1e-3\nname = "yes"\n[policy_kwargs]\nnet_arch = [8, 8]\n')
    cfg = config.build(Rich, config.load_file(t))
    assert cfg.lr == 0.001 and cfg.name == "yes" and cfg.policy_kwargs == {"net_arch": [8, 8]}


def test_toml_without_tomllib_uses_tomli_and_never_blames_the_file(tmp_path, monkeypatch):
    import tomllib

    t = tmp_path / "c.toml"
    t.write_text("epochs = 4\n")
    monkeypatch.setitem(sys.modules, "tomllib", None)  # Python 3.10: no tomllib
    fake = types.ModuleType("tomli")
    fake.loads, fake.TOMLDecodeError = tomllib.loads, tomllib.TOMLDecodeError
    monkeypatch.setitem(sys.modules, "tomli", fake)
    assert config.load_file(t) == {"epochs": 4}
    monkeypatch.setitem(sys.modules, "tomli", None)  # and not installed either
    with pytest.raises(ConfigError) as e:
        config.load_file(t)
    assert "tomli" in str(e.value) and "cannot parse" not in str(e.value)


def test_bad_yaml_names_line_and_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nhidden: [1,\n")
    with pytest.raises(ConfigError) as e:
        config.load_file(bad)
    assert "cannot parse config file" in str(e.value) and "line 3" in str(e.value)


# -- ranges, finiteness, cross-field checks ---------------------------------------------------


@dataclass
class Ranged(TrainConfig):
    hidden: list[int] = option([8], "widths", min=1)
    grid: list[list[float]] = option([[0.5]], "nested", min=0, max=1)
    dropout: float = option(0.2, "dropout", min=0, lt=1)
    test_size: float = option(0.2, "test fraction", gt=0, lt=1)
    val_size: float = option(0.0, "validation fraction", min=0, lt=1)
    temperature: float = option(1.0, "may be infinite", gt=0, finite=False)
    epochs: int = option(5, "redeclared: keeps TrainConfig's min=1")

    def validate(self) -> None:
        super().validate()
        if self.test_size + self.val_size >= 1:
            raise ConfigError(f"test_size + val_size must be < 1, got {self.test_size} + "
                              f"{self.val_size}")


@pytest.mark.parametrize("overrides, fragment", [
    ({"lr": "-1"}, "bad value for 'lr' (--set): -1.0; lr must be > 0"),
    ({"lr": "0"}, "lr must be > 0"),
    ({"lr": "nan"}, "'lr' (--set): nan; lr must be a finite number"),
    ({"lr": "inf"}, "lr must be a finite number"),
    ({"lr": "-.inf"}, "lr must be a finite number"),
    ({"dropout": "1.5"}, "'dropout' (--set): 1.5; dropout must be in [0, 1)"),
    ({"dropout": "1"}, "dropout must be in [0, 1)"),
    ({"test_size": "0"}, "test_size must be in (0, 1)"),
    ({"hidden": "[-5]"}, "'hidden' (--set): [-5]; every item of hidden must be >= 1"),
    ({"hidden": "[8, 0]"}, "every item of hidden must be >= 1"),
    ({"grid": "[[0.5], [2]]"}, "every item of grid must be in [0, 1]"),
    ({"grid": "[[nan]]"}, "every item of grid must be a finite number"),
    ({"seed": "-1"}, "seed must be in [0, 4294967295]"),
    ({"seed": "99999999999999999999999"}, "99999999999999999999999; seed must be in"),
    ({"epochs": "0"}, "epochs must be >= 1"),
    ({"batch_size": "-5"}, "batch_size must be >= 1"),
    ({"grad_clip": "-0.1"}, "grad_clip must be >= 0"),
    ({"early_stop": "-1"}, "early_stop must be >= 0"),
    ({"explain_samples": "0"}, "explain_samples must be >= 1"),
    ({"explain_num_samples": "5"}, "explain_num_samples must be >= 10"),
    ({"temperature": "0"}, "temperature must be > 0"),
    ({"test_size": "0.6", "val_size": "0.5"}, "test_size + val_size must be < 1"),
])
def test_values_out_of_range_are_refused_in_one_line(overrides, fragment):
    with pytest.raises(ConfigError) as e:
        config.build(Ranged, overrides)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_in_range_values_and_opt_out_of_finiteness():
    cfg = config.build(Ranged, {"temperature": "inf", "dropout": "0", "hidden": "[1, 2]",
                                "test_size": "0.5", "val_size": "0.4", "seed": str(2**32 - 1)})
    assert cfg.temperature == float("inf") and cfg.dropout == 0.0 and cfg.seed == 2**32 - 1


def test_error_names_the_source_of_the_value(tmp_path):
    with pytest.raises(ConfigError, match=r"'seed' \(--seed\): -1;"):
        config.build(Ranged, {"seed": "-1", "lr": "0.1"}, sources={"seed": "--seed"})
    with pytest.raises(ConfigError, match=r"'lr' \(c.yaml\)"):
        config.build(Ranged, {"lr": -1}, source="c.yaml")

    @dataclass
    class BadDefault(TrainConfig):
        width: int = option(0, "a lab's own mistake", min=1)

    with pytest.raises(ConfigError, match=r"'width' \(default\)"):
        config.build(BadDefault)


def test_range_rules_and_lab_info_text():
    infos = {f.name: f for f in config.fields(Ranged)}
    assert infos["epochs"].min == 1  # redeclared key keeps the base's rule
    assert infos["dropout"].range_text == "in [0, 1)"
    assert infos["lr"].range_text == "> 0" and infos["amp"].range_text == ""
    with pytest.raises(TypeError):
        option(1, "both bounds", min=0, gt=0)


def test_unknown_key_suggests_the_closest_key():
    with pytest.raises(ConfigError) as e:
        config.build(Cfg, {"lr_shedule": "cosine"})
    assert "Did you mean 'lr_schedule'?" in str(e.value)


def test_every_lab_default_config_is_valid(monkeypatch):
    import importlib.util
    from pathlib import Path

    from labs.registry import discover

    reg = discover()
    configs = [reg.get(name).load().Config for name in ("xor-mlp", "digits-mlp",
                                                        "perceptron-gates")]
    path = Path(__file__).parents[1] / "examples/plugin/lab_moons/lab.py"
    spec = importlib.util.spec_from_file_location("_moons_lab", path)
    moons = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, moons)  # dataclasses look their module up
    spec.loader.exec_module(moons)
    for cls in configs + [moons.Config]:
        config.build(cls)
    infos = {f.name: f for f in config.fields(configs[1])}
    assert (infos["dropout"].min, infos["dropout"].lt, infos["hidden"].min) == (0, 1, 1)


def test_perceptron_gates_are_checked():
    from labs.registry import discover

    cls = discover().get("perceptron-gates").load().Config
    with pytest.raises(ConfigError, match="each item: choose one of AND"):
        config.build(cls, {"gates": "[AND, MAYBE]"})


def test_lab_info_shows_ranges(cli):
    code, out, _ = cli("info", "digits-mlp")
    assert code == 0
    line = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    assert line["dropout"].endswith("in [0, 1)") and line["lr"].endswith("> 0")
    assert line["hidden"].endswith("each >= 1") and "[auto|cpu|cuda|mps]" in line["device"]


def test_python_values_from_numpy_are_accepted():
    import numpy as np

    cfg = config.build(Cfg, {"epochs": np.int64(3), "lr": np.float32(0.5),
                             "hidden": list(np.array([4, 2])), "batch_size": 8.0})
    assert (cfg.epochs, cfg.lr, cfg.hidden, cfg.batch_size) == (3, 0.5, [4, 2], 8)
    assert type(cfg.epochs) is int and type(cfg.lr) is float


def test_split_config_is_one_declaration_every_three_way_lab_shares():
    """test_size / val_size and their cross-key check live once, in the core."""
    from labs.config import SplitConfig, build
    from supervised.digits import Config as DigitsConfig

    assert issubclass(DigitsConfig, SplitConfig)
    assert build(DigitsConfig, {}).val_size == 0.1
    with pytest.raises(ConfigError, match=r"test_size \+ val_size must be < 1"):
        build(DigitsConfig, {"test_size": "0.6", "val_size": "0.5"})
    with pytest.raises(ConfigError, match="val_size"):
        build(SplitConfig, {"val_size": "1.0"})
