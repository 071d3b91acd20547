"""Reload a saved run -- its lab, config, data and trained models -- without retraining:
`lab explain <run>` (more samples, or one input file) and `lab eval <run>`.

What is saved and how it comes back is the lab's `save` / `load` protocol (`labs/lab.py`);
this module knows no particular lab.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labs import config as config_mod
from labs import rundir
from labs.errors import ConfigError, LabError

IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


@dataclass
class Reloaded:
    """A saved run brought back: the lab, its config and data, and the trained models."""

    lab: Any
    cfg: Any
    data: Any
    models: dict[str, Any]
    path: Path


@dataclass
class Explained:
    """What `lab explain` made: the folder, the fidelity summary, and for an input file the
    model's prediction(s) and what was done to the input (resized, inverted)."""

    dir: Path
    summary: dict[str, float]
    predictions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_meta(path: Path) -> dict:
    """A run's `config.yaml`, or one line saying why it cannot be read."""
    f = path / "config.yaml"
    meta = rundir.read_yaml(f)  # one line for a damaged or unreadable file
    if not isinstance(meta, dict) or not isinstance(meta.get("config", {}), dict):
        raise ConfigError(f"{f} is not a run's config (a mapping with 'lab' and 'config')")
    if not isinstance(meta.get("lab"), str) or not meta["lab"]:
        raise ConfigError(f"{f} names no lab")
    return meta


def find_run(ref: str, runs_dir: str | Path | None = None) -> tuple[type, dict, Path]:
    """(lab class, config.yaml contents, run path) of a saved run."""
    from labs.runner import load_lab

    path = rundir.find(ref, root=runs_dir)
    meta = read_meta(path)
    return load_lab(meta["lab"]), meta, path


def restore(lab_cls: type, meta: dict, path: Path) -> Reloaded:
    """The lab, its saved config, its data and its trained models (`Lab.load`)."""
    from labs.trainer import seed_everything

    cfg = config_mod.build(lab_cls.Config, meta.get("config", {}), source=str(path))
    seed_everything(cfg.seed)
    lab = lab_cls()
    try:
        data = lab.data(cfg)
        models = lab.load(path, cfg, data)
    except NotImplementedError:
        raise LabError(f"lab '{lab_cls.name}' cannot be reloaded (it defines no data()/model(),"
                       f" or no load())") from None
    if not models:
        raise LabError(f"run {path} has no saved model to reload")
    return Reloaded(lab, cfg, data, dict(models), path)


def explain_saved(ref: str, *, input_file: str | None = None, samples: int | None = None,
                  runs_dir: str | Path | None = None) -> Explained:
    """Explain more test samples of a saved run, or one input file."""
    from labs.context import Run
    from labs.explaining import explain_run
    from labs.tracker import Tracker

    lab_cls, meta, path = find_run(ref, runs_dir)
    if lab_cls.explains == "none":
        raise LabError(f"lab '{lab_cls.name}' has nothing to explain")
    r = restore(lab_cls, meta, path)
    own_data_left_out(r, meta, "subjects", "explain", "explain")
    notes: list[str] = []
    inputs = read_input(input_file, r.data, lab_cls.explains, notes) if input_file else None
    out = path / "explanations" / time.strftime("more-%Y%m%d-%H%M%S")
    while out.exists():
        out = out.with_name(out.name + "x")
    out.mkdir(parents=True)
    tracker = Tracker(out, wandb_mode="disabled")
    run = Run(lab_cls.name, path.name, path, r.cfg, model_device(r.models), tracker)
    try:
        n = 1 if inputs is not None else (samples or r.cfg.explain_samples)
        summary = explain_run(r.lab, r.cfg, run, r.models, r.data, n=n,
                              num_samples=r.cfg.explain_num_samples, out_dir=out,
                              samples=inputs)
        if inputs is not None:  # what the lab adds about a typed input (a translation)
            notes += r.lab.describe_input(r.cfg, r.models, r.data, inputs, out)
    except BaseException:
        import shutil

        shutil.rmtree(out, ignore_errors=True)  # no half-written folder left behind
        raise
    finally:
        tracker.finish()
    preds = predictions(out) if inputs is not None else []
    return Explained(out, summary, preds, notes)


def evaluate_saved(ref: str, *, runs_dir: str | Path | None = None
                   ) -> tuple[Path, dict[str, Any]]:
    """Evaluate a saved run on its test data (`Lab.evaluate`); writes `eval-<time>.json`."""
    lab_cls, meta, path = find_run(ref, runs_dir)
    r = restore(lab_cls, meta, path)
    left_out = own_data_left_out(r, meta, "evaluate", "eval", "score")
    metrics = dict(r.lab.evaluate(r.cfg, r.models, r.data) or {})
    if left_out and len(r.models) == 1 and (name := next(iter(r.models))):
        # the default names one model's metrics without its name: keep the run's names
        metrics = {k if k.startswith(f"{name}/") else f"{name}/{k}": v
                   for k, v in metrics.items()}
    out = path / time.strftime("eval-%Y%m%d-%H%M%S.json")
    while out.exists():
        out = out.with_name(out.stem + "x.json")
    rundir.write_json(out, {
        "lab": lab_cls.name, "run_id": path.name,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "models": sorted(r.models), "left_out": left_out,
        "metrics": {k: rundir.jsonable(v) for k, v in metrics.items()}})
    return out, metrics


def own_data_left_out(r: Reloaded, meta: dict, hook: str, command: str, verb: str
                      ) -> list[str]:
    """`leave_out_own_data` for a reloaded run (`lab eval`, `lab explain`)."""
    return leave_out_own_data(r.lab, r.models, meta.get("recorded"), hook, command, verb,
                              r.path.name)


def leave_out_own_data(lab: Any, models: dict[str, Any], recorded: Any, hook: str,
                       command: str, verb: str, run_id: str) -> list[str]:
    """Take out of `models` the models `variants.fit_all` recorded as trained on inputs of
    their own, where the lab keeps the default `hook` (`evaluate`, `subjects`): that would
    score them on the lab's common data, numbers with no meaning. One warning per model; a
    lab that overrides the hook knows each model's data and keeps them all. Their names,
    sorted; a one-line `LabError` when no model is left."""
    from labs.lab import Lab
    from labs.variants import OWN_DATA

    if getattr(type(lab), hook) is not getattr(Lab, hook):
        return []
    own = recorded.get(OWN_DATA) if isinstance(recorded, dict) else None
    own = own if isinstance(own, dict) else {}  # a hand-edited config.yaml: nothing known
    left = sorted(n for n in models if n in own)
    if not left:
        return []
    where = f"{type(lab).__name__}.{hook}"
    if len(left) == len(models):
        raise LabError(f"every model of run {run_id} was trained on inputs of its own "
                       f"(Variant(data=...)): nothing for lab {command}; override {where} "
                       f"to {verb} them on their inputs")
    for name in left:
        warnings.warn(f"model '{name}' was trained on inputs of its own (Variant(data=...)): "
                      f"left out of lab {command}; override {where} to {verb} it on them",
                      OwnDataWarning, stacklevel=3)
        del models[name]
    return left


class OwnDataWarning(UserWarning):
    """A reloaded model was trained on inputs of its own and is left out (`lab eval`, `lab
    explain`)."""


def predictions(out: Path) -> list[str]:
    """`<subject>: <class> (p=...)` for the one explained input of each subject under `out`."""
    lines = []
    for f in sorted(out.rglob("sample_0.json")):
        e = json.loads(f.read_text())
        who = f.parent.relative_to(out).as_posix()
        prefix = "" if who == "." else f"[{who}] "
        if e.get("explained_class") is None:
            lines.append(f"{prefix}value {e.get('probability')}")
        else:
            p = e.get("probability")
            lines.append(f"{prefix}{e.get('class_name')} (p={p:.3f})" if isinstance(p, float)
                         else f"{prefix}{e.get('class_name')}")
    return lines


def model_device(models: Any) -> Any:
    """The device of the first torch module among `models` (a dict or one model); else cpu."""
    import torch

    for m in (models.values() if isinstance(models, dict) else [models]):
        if isinstance(m, torch.nn.Module):
            p = next(iter(m.parameters()), None)
            if p is not None:
                return p.device
    return torch.device("cpu")


# -- input files -------------------------------------------------------------------------------


def read_input(file: str, data: Any, kind: str, notes: list[str] | None = None) -> np.ndarray:
    """One input from a file, in the model's input space: shaped (1, *input_shape), or one
    string for text. What was done to the file's content is appended to `notes`."""
    notes = notes if notes is not None else []
    p = Path(file)
    if kind == "text" and not _is_file(p):  # a sentence typed on the command line
        out = np.empty(1, dtype=object)
        out[0] = file
        return out
    if not p.is_file():
        raise LabError(f"no input file {p}")
    if kind == "text":
        try:
            text = p.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise LabError(f"{p.name} is not a UTF-8 text file") from None
        notes.append(f"read the text from the file {p.name}")
        out = np.empty(1, dtype=object)
        out[0] = text
        return out
    if data is None or data.encode is None:  # None: e.g. an agent, whose data is its env
        raise LabError("this lab's data cannot encode raw inputs from a file")
    raw = _read_image(p, data, notes) if kind == "image" else _read_row(p, data, kind)
    return data.encode(raw).reshape(1, *data.input_shape).astype(np.float32)


def _is_file(p: Path) -> bool:
    """Whether `p` names a file (a long sentence is no valid path: no OSError for it)."""
    try:
        return p.is_file()
    except (OSError, ValueError):
        return False


def _layout(shape: tuple[int, ...]) -> tuple[int, int, int, bool]:
    """(H, W, C, channels_first) of a dataset's image_shape."""
    if len(shape) == 2:
        return shape[0], shape[1], 1, False
    if len(shape) == 3 and shape[-1] in (1, 3):
        return shape[0], shape[1], shape[2], False
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape[1], shape[2], shape[0], True
    raise LabError(f"this lab's image_shape {shape} is not (H, W), (H, W, C) or (C, H, W)")


def _read_image(p: Path, data: Any, notes: list[str]) -> np.ndarray:
    """The image's pixels in [0, pixel_max], shaped like the dataset's `image_shape`:
    transparency flattened onto white, converted to the lab's channels, resized to its size,
    and inverted when its ink and the data's have opposite brightness."""
    from PIL import Image, UnidentifiedImageError

    if data.image_shape is None:
        raise LabError("this lab's data has no image_shape: it cannot read an image file")
    h, w, c, channels_first = _layout(tuple(data.image_shape))
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and
                                                    "transparency" in im.info):
                im = im.convert("RGBA")
                paper = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(paper, im)  # a drawing on a transparent canvas
            im = im.convert("L" if c == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        why = "not an image PIL can read" if isinstance(e, UnidentifiedImageError) else \
            type(e).__name__
        raise LabError(f"cannot read image {p.name}: {why}") from None
    size = f"{im.width}x{im.height}"
    if (im.width, im.height) != (w, h):
        shrink = im.width >= w and im.height >= h
        im = im.resize((w, h), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
        notes.append(f"resized {size} -> {w}x{h} ({'area averaging' if shrink else 'bilinear'})"
                     + ("; the aspect ratio changed" if im.width * h != im.height * w else ""))
    img = np.asarray(im, dtype=np.float32) / 255.0
    b = data.brightness
    if c == 1 and b is not None and abs(b - 0.5) > 0.15 and (img.mean() - 0.5) * (b - 0.5) < 0:
        img = 1.0 - img
        ink = "dark ink on light paper" if b < 0.5 else "light ink on a dark background"
        want = "light on dark" if b < 0.5 else "dark on light"
        notes.append(f"inverted the image: it is {ink} (mean brightness "
                     f"{1 - img.mean():.2f}) and this lab's data is {want} ({b:.2f})")
    if c == 1:
        img = img.reshape(data.image_shape) if len(data.image_shape) == 2 else img[..., None]
    if channels_first:
        img = np.moveaxis(img, -1, 0)
    return img.reshape(data.image_shape) * data.pixel_max


def _read_row(p: Path, data: Any, kind: str) -> np.ndarray:
    """The first row of numbers of a CSV (or semicolon-separated) text file."""
    want = f"a CSV row of {data.n_features} numbers"
    with p.open("rb") as f:
        head = f.read(8)
    if head.startswith(IMAGE_MAGIC):
        raise LabError(f"{p.name} is an image; this {kind} lab reads {want}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LabError(f"{p.name} is not a text file; this {kind} lab reads {want}") from None
    rows = [line for line in text.splitlines() if line.strip()]
    for line in rows:
        try:
            values = np.array([float(v) for v in line.replace(";", ",").split(",")])
        except ValueError:
            continue  # a header line
        if values.size != data.n_features:
            raise LabError(f"{p.name} has {values.size} values in a row; this lab expects "
                           f"{data.n_features} ({', '.join(data.feature_names or [])})")
        return values
    raise LabError(f"{p.name} holds no row of numbers")
