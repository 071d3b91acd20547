"""Typed lab configs: dataclasses with a default, a help string and the allowed values per field.

Values come from the dataclass defaults, then a YAML/TOML file (`--config`), then `--set k=v`
overrides. One pass, when the config is built and before any work, turns every value into its
field's type and checks it against the field's range and choices and the config's `validate()`.
YAML gives a value its structure (lists, mappings, quoting); the field's declared type decides
what a scalar means, so `--set name=yes` stays the string "yes" and `--set lr=1e-3` is a float.
Nothing here imports torch: `lab info` and the CLI parser stay fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labs.errors import ConfigError

_RULES = ("choices", "min", "max", "gt", "lt", "finite")


def option(default: Any, help: str, *, choices: typing.Sequence[Any] | None = None,
           min: float | None = None, max: float | None = None,
           gt: float | None = None, lt: float | None = None, finite: bool = True) -> Any:
    """A config field with a default, a help string and the values it allows.

    `min`/`max` are inclusive bounds, `gt`/`lt` exclusive ones (give `min` or `gt`, not both);
    `choices` lists the allowed values. For a list (or tuple, nested lists too) they apply to
    every item. Numbers must be finite unless `finite=False`. A key a subclass declares again
    keeps the rules of the base class it does not restate (`epochs` stays >= 1).

    >>> @dataclass
    ... class Config(TrainConfig):
    ...     hidden: list[int] = option([64], "hidden layer widths", min=1)
    ...     dropout: float = option(0.2, "dropout after each hidden layer", min=0, lt=1)
    """
    if min is not None and gt is not None or max is not None and lt is not None:
        raise TypeError("option(): give min or gt (max or lt), not both")
    meta: dict[str, Any] = {"help": help}
    given = {"min": min, "max": max, "gt": gt, "lt": lt}
    meta.update({k: v for k, v in given.items() if v is not None})
    if choices is not None:
        meta["choices"] = tuple(choices)
    if not finite:
        meta["finite"] = False
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


_UNITS = {"s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
          "m": "min", "min": "min", "mins": "min", "minute": "min", "minutes": "min",
          "h": "h", "hour": "h", "hours": "h",
          "epoch": "epoch", "epochs": "epoch", "step": "step", "steps": "step"}


def parse_interval(spec: str | int) -> tuple[float, str]:
    """`"30s"`, `"2 min"`, `"5 epochs"`, `"500 steps"` (or an int: epochs) -> (n, unit), with
    unit 's', 'epoch' or 'step'.

    >>> parse_interval("30s"), parse_interval("5 epochs"), parse_interval(2)
    ((30.0, 's'), (5.0, 'epoch'), (2.0, 'epoch'))
    """
    if isinstance(spec, int) and not isinstance(spec, bool):
        n, unit = float(spec), "epoch"
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", str(spec).lower())
        if not m or m[2] not in _UNITS:
            raise ConfigError(f"checkpoint_every={spec!r} is not understood: write e.g. '30s', "
                              f"'2min', '5 epochs' or '500 steps'")
        n, unit = float(m[1]), _UNITS[m[2]]
        if unit in ("min", "h"):
            n, unit = n * (60 if unit == "min" else 3600), "s"
    if n <= 0:
        raise ConfigError(f"checkpoint_every={spec!r} must be positive")
    return n, unit


@dataclass
class LabConfig:
    """Keys every lab has."""

    seed: int = option(0, "random seed: the same seed and config give the same numbers",
                       min=0, max=2**32 - 1)
    device: str = option("auto", "where to compute", choices=("auto", "cpu", "cuda", "mps"))
    explain: bool = option(True, "explain a few test predictions with LIME after training")
    explain_samples: int = option(3, "how many test samples to explain", min=1)
    explain_num_samples: int = option(1000, "LIME perturbations per explanation", min=10)
    threads: int = option(0, "torch intra-op threads (0: auto, 1 for small models on few cores)",
                          min=0)

    def validate(self) -> None:
        """Checks across keys (`a + b < 1`), run after every key's own checks; raise
        `ConfigError` with one line naming the keys and values. Call `super().validate()`."""

    def preflight(self) -> None:
        """Checks of what TRAINING needs besides the values (a pretrained weights file, an
        earlier run to start from): run before a run starts or resumes, not when `lab eval` /
        `lab explain` reload a finished run, whose saved model no longer needs them (a run
        copied to a machine without the weights stays usable). Raise `ConfigError`; call
        `super().preflight()`."""


@dataclass
class TrainConfig(LabConfig):
    """Keys of a lab trained on the shared trainer."""

    epochs: int = option(10, "passes over the training data", min=1)
    lr: float = option(1e-3, "learning rate", gt=0)
    batch_size: int = option(64, "samples per gradient step", min=1)
    grad_clip: float = option(0.0, "clip the gradient norm to this value (0: off)", min=0)
    lr_schedule: str = option("none", "learning-rate schedule (onecycle steps every batch)",
                              choices=("none", "cosine", "step", "onecycle"))
    early_stop: int = option(0, "stop after this many epochs without improvement (0: off)",
                             min=0)
    restore_best: bool = option(True, "with early_stop: end with the weights of the best "
                                      "epoch, not the last one (false: the last)")
    amp: bool = option(True, "mixed precision (CUDA only)")
    compile: bool = option(False, "torch.compile the model")
    channels_last: bool = option(False, "channels-last memory for conv nets' 4-D batches and "
                                        "weights (faster with amp on CUDA tensor cores)")
    checkpoint_every: str = option("30s", "how often last.pt is written: '30s', '2min', "
                                          "'5 epochs' or '500 steps' (and always at the end "
                                          "and on interrupt)")

    def validate(self) -> None:
        super().validate()
        parse_interval(self.checkpoint_every)


@dataclass
class SplitConfig(TrainConfig):
    """`TrainConfig` plus the held-out fractions of a lab that splits its data three ways:
    training, validation (the curves, best.pt and early stopping watch it) and test."""

    test_size: float = option(0.2, "held-out test fraction (stratified)", gt=0, lt=1)
    val_size: float = option(0.1, "validation fraction (stratified): the curves, best.pt and "
                                   "early stopping watch it", min=0, lt=1)

    def validate(self) -> None:
        super().validate()
        if self.test_size + self.val_size >= 1:
            raise ConfigError(f"test_size + val_size must be < 1 (got {self.test_size} + "
                              f"{self.val_size}): nothing would be left to train on")


@dataclass(frozen=True)
class FieldInfo:
    """One config key, as `lab info` shows it."""

    name: str
    type: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    finite: bool = True

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    @property
    def per_item(self) -> bool:
        """Whether choices and bounds apply to the items of a list rather than the value."""
        return _is_sequence_type(self.type)

    @property
    def range_text(self) -> str:
        """`> 0`, `>= 1`, `in [0, 1)`; empty when unbounded."""
        lo = (f">= {self.min}" if self.min is not None
              else f"> {self.gt}" if self.gt is not None else "")
        hi = (f"<= {self.max}" if self.max is not None
              else f"< {self.lt}" if self.lt is not None else "")
        if lo and hi:
            return (f"in {'[' if self.min is not None else '('}{lo.split()[1]}, "
                    f"{hi.split()[1]}{']' if self.max is not None else ')'}")
        return lo or hi


def fields(config_cls: type) -> list[FieldInfo]:
    """The keys of a config dataclass with their resolved types, defaults, help and rules."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rules = {k: f.metadata[k] for k in _RULES if k in f.metadata}
        for base in config_cls.__mro__[1:]:  # a redeclared key keeps its base's rules
            base_field = getattr(base, "__dataclass_fields__", {}).get(f.name)
            if base_field is not None:
                for k in _RULES:
                    if k in base_field.metadata:
                        rules.setdefault(k, base_field.metadata[k])
        if "choices" not in rules and _literal_args(hints[f.name]):
            rules["choices"] = _literal_args(hints[f.name])
        rules.setdefault("choices", None)
        out.append(FieldInfo(f.name, hints[f.name], default, f.metadata.get("help", ""),
                             **rules))
    return out


def type_name(tp: Any) -> str:
    """A short readable name: `int`, `list[int]`, `str | None`."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def build(config_cls: type, overrides: Mapping[str, Any] | None = None, *,
          source: str = "--set", sources: Mapping[str, str] | None = None) -> Any:
    """An instance of `config_cls` with `overrides` applied, type-converted and checked.

    `source` says where the overrides come from (`--set`, a file's path); `sources` maps single
    keys to another origin (`{"seed": "--seed"}`). Every error is a one-line `ConfigError`.
    """
    infos = {f.name: f for f in fields(config_cls)}
    sources = dict(sources or {})
    values = {}
    for key, raw in (overrides or {}).items():
        src = sources.get(key, source)
        if key not in infos:
            raise ConfigError(unknown_key(key, infos.values(), src))
        values[key] = coerce(raw, infos[key], src)
    cfg = config_cls(**values)
    for name, info in infos.items():
        check(getattr(cfg, name), info, sources.get(name, source) if name in values
              else "default")
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def unknown_key(key: str, infos: typing.Iterable[FieldInfo], source: str) -> str:
    infos = list(infos)
    close = difflib.get_close_matches(key, [f.name for f in infos], n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown config key '{key}' ({source}).{hint} Valid keys: {valid_keys(infos)}"


def valid_keys(infos: typing.Iterable[FieldInfo]) -> str:
    return ", ".join(f"{f.name} ({f.type_name})" for f in infos)


def parse_set(items: typing.Iterable[str]) -> dict[str, Any]:
    """`["lr=0.01", "hidden=[128,64]"]` -> `{"lr": "0.01", "hidden": "[128,64]"}`: the values
    stay text until `build` reads them as their field's type."""
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
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {path}: it is not UTF-8 text") from None
    if path.suffix == ".toml":
        toml = _toml()
        try:
            data = toml.loads(text)
        except toml.TOMLDecodeError as e:
            raise ConfigError(f"cannot parse config file {path}: {e}".splitlines()[0]) from None
    else:
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as e:
            raise ConfigError(f"cannot parse config file {path}: {_yaml_problem(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value")
    # a string the file quoted (or any TOML string) is read, not re-read as `--set` text is
    return {str(k): _Quoted(v) if type(v) is str else v for k, v in data.items()}


def _toml() -> types.ModuleType:
    """`tomllib` (Python 3.11+) or its backport `tomli` (a dependency on Python 3.10)."""
    try:
        import tomllib

        return tomllib
    except ImportError:
        pass
    try:
        import tomli

        return tomli
    except ImportError:
        raise ConfigError("reading a TOML config file needs Python 3.11+ or the tomli package "
                          "(pip install tomli); or write the config as YAML") from None


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return (str(e).splitlines() or [type(e).__name__])[0]


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


# -- reading values --------------------------------------------------------------------------


class _Plain(str):
    """An unquoted YAML scalar: whether it is a number, a bool or null depends on the field."""


class _Quoted(str):
    """A string a config file quoted: that text, never a number, a list or null."""


class _Loader(yaml.BaseLoader):
    """YAML for structure only: scalars stay text, marked `_Plain` when they were not quoted."""

    def construct_scalar(self, node: yaml.ScalarNode) -> str:
        value = super().construct_scalar(node)
        return _Plain(value) if node.style is None else value


def coerce(raw: Any, info: FieldInfo, source: str = "--set") -> Any:
    """Turn `raw` (text from `--set` or Python, or a value from a file) into the field's type."""
    try:
        value = _read_text(raw, info.type) if type(raw) is str else raw
        if (_is_sequence_type(info.type) and value is not None and not _is_null(value)
                and not isinstance(value, (list, tuple, set, frozenset, Mapping))):
            value = [value]  # a single item of a list key: hidden=32
        return _coerce(value, info.type)
    except (ValueError, ArithmeticError):
        if info.choices is not None:
            raise ConfigError(f"bad value for '{info.name}' ({source}): {raw!r}; "
                              f"choose one of {_join(info.choices)}") from None
        raise ConfigError(
            f"bad value for '{info.name}' ({source}): {raw!r} is not {info.type_name}"
        ) from None


def check(value: Any, info: FieldInfo, source: str = "--set") -> None:
    """Refuse a value outside the field's choices or range, or a number that is not finite."""
    what = f"every item of {info.name}" if info.per_item else info.name
    for x in _items(value) if info.per_item else [value]:
        problem = None
        if x is None:
            continue
        if info.choices is not None and x not in info.choices:
            problem = (f"each item: choose one of {_join(info.choices)}" if info.per_item
                       else f"choose one of {_join(info.choices)}")
        elif isinstance(x, bool) or not isinstance(x, (int, float)):
            continue
        elif info.finite and not math.isfinite(x):
            problem = f"{what} must be a finite number"
        elif not ((info.min is None or x >= info.min) and (info.max is None or x <= info.max)
                  and (info.gt is None or x > info.gt) and (info.lt is None or x < info.lt)):
            problem = f"{what} must be {info.range_text}"
        if problem:
            raise ConfigError(f"bad value for '{info.name}' ({source}): {value!r}; {problem}")


def _join(values: typing.Iterable[Any]) -> str:
    return ", ".join(map(str, values))


def _items(value: Any) -> typing.Iterator[Any]:
    if isinstance(value, (list, tuple, set, frozenset)):
        for x in value:
            yield from _items(x)
    else:
        yield value


def _read_text(text: str, tp: Any) -> Any:
    """Text given for a key: verbatim for a string key, else read as YAML for its structure."""
    members = _members(tp)
    if members and all(m is str for m in members):
        return _Plain(text)  # `--set name=a: b` is the string "a: b"
    body = text.strip()
    if members and all(_is_sequence_type(m) for m in members) and not body.startswith("[") \
            and not (type(None) in _args(tp) and _is_null(_Plain(body))):
        body = f"[{body}]"  # hidden=128,64 and hidden=32 are lists
    try:
        return yaml.load(body, Loader=_Loader)
    except yaml.YAMLError:
        raise ValueError(text) from None


def _args(tp: Any) -> tuple:
    return typing.get_args(tp) if _is_union(tp) else (tp,)


def _members(tp: Any) -> list:
    """The types a key allows besides None."""
    return [a for a in _args(tp) if a is not type(None)]


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_sequence_type(tp: Any) -> bool:
    members = _members(tp)
    return bool(members) and all(
        (typing.get_origin(m) or m) in (list, tuple, set, frozenset) for m in members)


def _literal_args(tp: Any) -> tuple | None:
    lits = [a for m in _members(tp) if typing.get_origin(m) is typing.Literal
            for a in typing.get_args(m)]
    return tuple(lits) or None


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, _Plain) and v.strip().lower() in ("", "~", "null", "none"))


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_SPECIAL_FLOATS = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def _coerce(v: Any, tp: Any) -> Any:
    """`v` as a value of type `tp`; ValueError when it is not one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return _infer(v)
    if _is_union(tp):
        if type(None) in args and _is_null(v):
            return None
        for arg in _members(tp):
            try:
                return _coerce(v, arg)
            except (ValueError, ArithmeticError):
                continue
        raise ValueError(v)
    if tp is type(None):
        if _is_null(v):
            return None
        raise ValueError(v)
    if origin is typing.Literal:
        for choice in args:
            try:
                x = _coerce(v, type(choice))
            except (ValueError, ArithmeticError):
                continue
            if type(x) is type(choice) and x == choice:
                return choice
        raise ValueError(v)
    container = origin or tp
    if container in (list, tuple, set, frozenset):
        if not isinstance(v, (list, tuple, set, frozenset)):
            raise ValueError(v)
        if container is tuple and args and args[-1] is not Ellipsis:
            if len(v) != len(args):
                raise ValueError(v)
            return tuple(_coerce(x, a) for x, a in zip(v, args))
        item = args[0] if args else Any
        return container(_coerce(x, item) for x in v)
    if container is dict:
        if not isinstance(v, Mapping):
            raise ValueError(v)
        key_tp, value_tp = args or (Any, Any)
        return {_coerce(k, key_tp): _coerce(x, value_tp) for k, x in v.items()}
    if tp is bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
            return v.strip().lower() in _TRUE
        raise ValueError(v)
    if tp is int:
        if isinstance(v, bool):
            raise ValueError(v)
        if isinstance(v, numbers.Integral):  # numpy ints from a notebook sweep too
            return int(v)
        if isinstance(v, str):
            try:
                return int(v.strip())
            except ValueError:
                v = float(v.strip())  # batch_size=1e3
        if isinstance(v, numbers.Real) and float(v).is_integer() and abs(v) < 2**53:
            return int(v)
        raise ValueError(v)
    if tp is float:
        if isinstance(v, bool):
            raise ValueError(v)
        if isinstance(v, numbers.Real):
            return float(v)
        if isinstance(v, str):
            text = v.strip()
            return float(_SPECIAL_FLOATS.get(text.lower(), text))
        raise ValueError(v)
    if tp is str:
        if isinstance(v, str):
            return str(v)  # a plain `str`, not `_Plain`: config.yaml must be able to hold it
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)  # TOML `name = 5`
        raise ValueError(v)
    raise TypeError(f"unsupported config type {tp}")  # the lab's bug, not the user's value


def _infer(v: Any) -> Any:
    """An untyped value (`dict`, `Any`): unquoted scalars read as YAML 1.2 reads them
    (1e-3 is a float, yes is a string), quoted ones stay strings."""
    if isinstance(v, _Plain):
        text = v.strip()
        if _is_null(v):
            return None
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text) or text.lower() in _SPECIAL_FLOATS:
            return float(_SPECIAL_FLOATS.get(text.lower(), text))
        return str(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (list, tuple)):
        return type(v)(_infer(x) for x in v)
    if isinstance(v, Mapping):
        return {_infer(k): _infer(x) for k, x in v.items()}
    return v
