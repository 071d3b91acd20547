"""Keras-style model summaries: layers, output shapes, parameter counts (total, trainable,
non-trainable), computed by torchinfo. `lab summary <name>` prints them for a fresh model;
every run writes them for its trained model(s) to `<run>/summary.txt`.

torch and torchinfo are imported inside the functions: `lab list` / `lab --help` import
this module's CLI without them."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labs.errors import LabError

DEPTH = 4  # nesting shown (a Sequential inside a Sequential inside the model); totals count all
COLUMNS = ("output_size", "num_params", "trainable")


@dataclass
class Summary:
    """One model's summary: its table (`text`) and its parameter counts."""

    name: str
    text: str
    total: int
    trainable: int

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable

    def __str__(self) -> str:
        return self.text


def summarize(model: Any, input_shape: Sequence[int] | None = None, *, name: str = "",
              depth: int = DEPTH, dtype: Any = None) -> Summary:
    """The summary of `model` for one input of `input_shape` (no batch axis; a batch of 1 is
    run, in eval mode, without gradients). Without a shape, or when the forward pass fails
    with it (a generator that takes noise, not data), the table has no output shapes and says
    why; the parameter counts are complete either way.

    >>> s = summarize(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2)), (2,))
    >>> s.total, s.trainable, print(s)
    """
    import torch
    import torchinfo

    if not isinstance(model, torch.nn.Module):
        what = f"model '{name}'" if name else "the model"
        raise LabError(f"{what} is a {type(model).__name__}, not a torch module: nothing to "
                       f"summarise")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    modes = {m: m.training for m in model.modules()}  # torchinfo resets them all to the root's
    note = ""
    try:
        stats = None
        if input_shape is not None:
            x = torch.zeros((1, *input_shape), dtype=dtype or torch.float32)
            try:
                stats = _torchinfo(torchinfo, model, x, depth, device)
            except RuntimeError as e:  # torchinfo wraps any error of the forward pass
                cause = e.__cause__ or e
                note = (f"(no output shapes: a forward pass on an input of shape "
                        f"{tuple(x.shape)} failed: {_one_line(cause)})")
        else:
            note = "(no output shapes: the input shape is unknown)"
        if stats is None:
            stats = _torchinfo(torchinfo, model, None, depth, device)
    finally:
        for m, training in modes.items():
            m.training = training
        # torchinfo keeps the last summary of each model class (and so the model) in a global
        torchinfo.torchinfo.clear_cached_forward_pass()
    title = f"Model: {name}" if name else f"Model: {type(model).__name__}"
    text = "\n".join(filter(None, (title, note, str(stats))))
    return Summary(name, text, int(stats.total_params), int(stats.trainable_params))


def _torchinfo(torchinfo: Any, model: Any, x: Any, depth: int, device: Any) -> Any:
    cols = COLUMNS if x is not None else ("num_params", "trainable")
    stats = torchinfo.summary(model, input_data=x, depth=depth, device=device, mode="eval",
                              col_names=cols, col_width=20, row_settings=("depth", "var_names"),
                              verbose=0)
    # exact mult-adds: torchinfo 1.8 prints its unit as "(Units.GIGABYTES)" on Python >= 3.11
    stats.formatting.macs_units = torchinfo.Units.NONE
    return stats


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}"


def example_shape(data: Any) -> tuple[tuple[int, ...] | None, Any]:
    """(input shape without the batch axis, dtype) of one training input of `data`, or
    (None, None) when there is no data or its inputs are not tensors (text)."""
    import numpy as np
    import torch

    if data is None:
        return None, None
    try:
        x, _ = data.sample("train", 1)
        if x.dtype == object:  # strings: no tensor to feed
            return None, None
        return tuple(data.input_shape), torch.from_numpy(np.ascontiguousarray(x)).dtype
    except (ValueError, TypeError, IndexError):
        return None, None


def models_of(built: Any) -> dict[str, Any]:
    """What `Lab.model()` or `run.models` holds, by name ("" for a lone model)."""
    return dict(built) if isinstance(built, Mapping) else {"": built}


def summarize_all(models: Mapping[str, Any], data: Any = None, *, depth: int = DEPTH,
                  lab: str = "") -> list[Summary]:
    """A summary of each torch module in `models` (others are skipped), fed `data`'s inputs."""
    import torch

    shape, dtype = example_shape(data)
    return [summarize(m, shape, name="/".join(filter(None, (lab, n))), depth=depth, dtype=dtype)
            for n, m in models.items() if isinstance(m, torch.nn.Module)]


def for_lab(lab: Any, cfg: Any, *, depth: int = DEPTH) -> list[Summary]:
    """The summaries of a lab's fresh, untrained model(s) for config `cfg` (`lab summary`)."""
    name = lab.name or type(lab).__name__
    for hook in ("data", "model"):
        if getattr(type(lab), hook) is getattr(_base(), hook):
            raise LabError(f"{name} defines no {hook}(): nothing to summarise (a lab needs "
                           f"data(cfg) and model(cfg, data) for `lab summary`)")
    data = lab.data(cfg)
    summaries = summarize_all(models_of(lab.model(cfg, data)), data, depth=depth, lab=name)
    if not summaries:
        raise LabError(f"{name}'s model() returns no torch module: nothing to summarise")
    return summaries


def _base() -> type:
    from labs.lab import Lab

    return Lab


def write(path: Path, models: Mapping[str, Any], data: Any = None, *, lab: str = "") -> None:
    """Write the summaries of a run's trained models to `path` (nothing when none is a torch
    module). Never raises: a model that cannot be summarised is a warning, not a failed run."""
    try:
        summaries = summarize_all(models, data, lab=lab)
        if summaries:
            Path(path).write_text("\n\n".join(s.text for s in summaries) + "\n")
    except Exception as e:  # noqa: BLE001 - a summary is a nicety; the run's results stand
        warnings.warn(f"no model summary ({path.name}): {_one_line(e)}", RuntimeWarning,
                      stacklevel=2)
