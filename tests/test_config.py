"""Config parsing: types, lists, files, and the one-line errors users get."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

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
