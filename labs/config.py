"""Typed lab configs: dataclasses with a default and a help string per field.

Values come from the dataclass defaults, then a YAML/TOML file (`--config`), then `--set k=v`
overrides; every value is checked against the field's type, and unknown keys are rejected with
the list of valid keys. Nothing here imports torch: `lab info` and the CLI parser stay fast.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labs.errors import ConfigError


def option(default: Any, help: str, *, choices: typing.Sequence[Any] | None = None) -> Any:
    """A config field with a default and a help string (`choices` restricts the values).

    >>> @dataclass
    ... class Config(TrainConfig):
    ...     hidden: list[int] = option([64], "hidden layer widths")
    """
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class LabConfig:
    """Keys every lab has."""

    seed: int = option(0, "random seed: the same seed and config give the same numbers")
    device: str = option("auto", "where to compute", choices=("auto", "cpu", "cuda", "mps"))
    explain: bool = option(True, "explain a few test predictions with LIME after training")
    explain_samples: int = option(3, "how many test samples to explain")
    explain_num_samples: int = option(1000, "LIME perturbations per explanation")
    threads: int = option(0, "torch intra-op threads (0: auto, 1 for small models on few cores)")


@dataclass
class TrainConfig(LabConfig):
    """Keys of a lab trained on the shared trainer."""

    epochs: int = option(10, "passes over the training data")
    lr: float = option(1e-3, "learning rate")
    batch_size: int = option(64, "samples per gradient step")
    grad_clip: float = option(0.0, "clip the gradient norm to this value (0: off)")
    lr_schedule: str = option("none", "learning-rate schedule", choices=("none", "cosine", "step"))
    early_stop: int = option(0, "stop after this many epochs without improvement (0: off)")
    amp: bool = option(True, "mixed precision (CUDA only)")
    compile: bool = option(False, "torch.compile the model")


@dataclass(frozen=True)
class FieldInfo:
    """One config key, as `lab info` shows it."""

    name: str
    type: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None

    @property
    def type_name(self) -> str:
        return type_name(self.type)


def fields(config_cls: type) -> list[FieldInfo]:
    """The keys of a config dataclass with their resolved types, defaults and help."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append(
            FieldInfo(f.name, hints[f.name], default, f.metadata.get("help", ""),
                      f.metadata.get("choices"))
        )
    return out


def type_name(tp: Any) -> str:
    """A short readable name: `int`, `list[int]`, `str | None`."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def build(config_cls: type, overrides: dict[str, Any] | None = None, *, source: str = "--set"):
    """An instance of `config_cls` with `overrides` applied and type-checked."""
    infos = {f.name: f for f in fields(config_cls)}
    values = {}
    for key, raw in (overrides or {}).items():
        if key not in infos:
            raise ConfigError(
                f"unknown config key '{key}' ({source}). Valid keys: {valid_keys(infos.values())}"
            )
        values[key] = coerce(raw, infos[key], source)
    return config_cls(**values)


def valid_keys(infos: typing.Iterable[FieldInfo]) -> str:
    return ", ".join(f"{f.name} ({f.type_name})" for f in infos)


def parse_set(items: typing.Iterable[str]) -> dict[str, Any]:
    """`["lr=0.01", "hidden=[128,64]"]` -> `{"lr": "0.01", "hidden": "[128,64]"}` (raw strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{item}'")
        out[key.strip()] = value.strip()
    return out


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or TOML config file into a flat dict of overrides."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # any parser error is the user's file, not our bug
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"cannot parse config file {path}: {msg}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value")
    return data


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


# -- type coercion ---------------------------------------------------------------------------


def coerce(raw: Any, info: FieldInfo, source: str = "--set") -> Any:
    """Turn `raw` (a CLI string or a value from a file) into a value of the field's type."""
    try:
        value = _coerce(raw, info.type)
    except (TypeError, ValueError):
        raise ConfigError(
            f"bad value for '{info.name}' ({source}): {raw!r} is not {info.type_name}"
        ) from None
    if info.choices is not None and value not in info.choices:
        allowed = ", ".join(map(str, info.choices))
        raise ConfigError(
            f"bad value for '{info.name}' ({source}): {raw!r}; choose one of {allowed}")
    return value


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _coerce(raw: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (raw is None or (isinstance(raw, str) and raw.lower() in
                                                   ("none", "null", "~", ""))):
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(raw, arg)
            except (TypeError, ValueError):
                continue
        raise ValueError(raw)
    if origin in (list, tuple):
        items = _as_list(raw)
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return origin(_coerce(x, item_tp) for x in items)
    if tp is Any:
        return raw
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ValueError(raw)
    if tp is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError(raw)
        return int(raw) if not isinstance(raw, str) else int(raw.strip())
    if tp is float:
        if isinstance(raw, bool):
            raise ValueError(raw)
        return float(raw)
    if tp is str:
        if isinstance(raw, (list, dict)):
            raise ValueError(raw)
        return str(raw)
    raise TypeError(f"unsupported config type {tp}")


def _as_list(raw: Any) -> list:
    if isinstance(raw, (list, tuple)):
        return list(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("[") and text.endswith("]"):
            inner = text[1:-1].strip()
            return [] if not inner else [x.strip().strip("'\"") for x in inner.split(",")]
        return [x.strip() for x in text.split(",") if x.strip()]
    raise ValueError(raw)
