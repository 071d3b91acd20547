"""Reload a saved run: its lab, config, data and trained weights (`lab explain <run>`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from labs import config as config_mod
from labs import rundir
from labs.errors import LabError


def find_run(ref: str, runs_dir: str | Path | None = None) -> tuple[type, dict, Path]:
    """(lab class, config.yaml contents, run path) of a saved run."""
    from labs.runner import load_lab

    path = rundir.find(ref, root=runs_dir)
    meta = rundir.read_yaml(path / "config.yaml")
    return load_lab(meta.get("lab", "")), meta, path


def restore(lab_cls: type, meta: dict, path: Path) -> tuple[Any, Any, Any, Any]:
    """(lab instance, config, data, model with the run's final weights)."""
    from labs import checkpoint
    from labs.trainer import seed_everything

    cfg = config_mod.build(lab_cls.Config, meta.get("config", {}), source=str(path))
    seed_everything(cfg.seed)
    lab = lab_cls()
    try:
        data = lab.data(cfg)
        model = lab.model(cfg, data)
    except NotImplementedError:
        raise LabError(f"lab '{lab_cls.name}' cannot be reloaded (it defines no data()/model())"
                       ) from None
    ckpt = path / "checkpoints" / "model.pt"
    checkpoint.load_weights(model, checkpoint.load(ckpt)["model"], ckpt)
    model.eval()
    return lab, cfg, data, model


def explain_saved(ref: str, *, input_file: str | None = None, samples: int | None = None,
                  runs_dir: str | Path | None = None) -> tuple[Path, dict[str, float]]:
    """Explain more test samples of a saved run, or one input file; returns (folder, summary)."""
    from labs.explaining import explain_run
    from labs.context import Run
    from labs.tracker import Tracker

    lab_cls, meta, path = find_run(ref, runs_dir)
    if lab_cls.explains == "none":
        raise LabError(f"lab '{lab_cls.name}' has nothing to explain")
    lab, cfg, data, model = restore(lab_cls, meta, path)
    inputs = read_input(input_file, data, lab.explains) if input_file else None
    out = path / "explanations" / time.strftime("more-%Y%m%d-%H%M%S")
    while out.exists():
        out = out.with_name(out.name + "x")
    out.mkdir(parents=True)
    tracker = Tracker(out, wandb_mode="disabled")
    run = Run(lab_cls.name, path.name, path, cfg, model_device(model), tracker)
    try:
        n = 1 if inputs is not None else (samples or cfg.explain_samples)
        summary = explain_run(lab, cfg, run, {"": model}, data, n=n,
                              num_samples=cfg.explain_num_samples, out_dir=out, samples=inputs)
    finally:
        tracker.finish()
    return out, summary


def model_device(model: Any) -> Any:
    import torch

    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def read_input(file: str, data: Any, kind: str) -> np.ndarray:
    """One input from a file, in the model's input space, shaped (1, *input_shape)."""
    p = Path(file)
    if not p.is_file():
        raise LabError(f"no input file {p}")
    if data.encode is None:
        raise LabError("this lab's data cannot encode raw inputs from a file")
    if kind == "image":
        raw = _read_image(p, data)
    else:
        raw = _read_row(p, data)
    return data.encode(raw).reshape(1, *data.input_shape).astype(np.float32)


def _read_image(p: Path, data: Any) -> np.ndarray:
    import matplotlib.image as mpimg

    try:
        img = np.asarray(mpimg.imread(p), dtype=np.float32)
    except Exception as e:
        raise LabError(f"cannot read image {p}: {type(e).__name__}") from None
    if img.max() > 1.0:  # 8-bit files (JPEG) come as 0..255
        img = img / 255.0
    shape = tuple(data.image_shape)
    if img.ndim == 3 and len(shape) == 2:
        img = img[..., :3].mean(axis=-1)  # the lab wants grayscale
    if img.shape != shape:
        want = "x".join(map(str, shape))
        raise LabError(f"image {p.name} is {'x'.join(map(str, img.shape))}; "
                       f"this lab expects {want}")
    return img * data.pixel_max


def _read_row(p: Path, data: Any) -> np.ndarray:
    rows = [line for line in p.read_text().splitlines() if line.strip()]
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
