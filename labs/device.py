"""Device choice: cuda > mps > cpu, or what `--device` asks for."""

from __future__ import annotations

import torch

from labs.errors import ConfigError


def choose(requested: str = "auto") -> torch.device:
    """The device to compute on; an unavailable explicit choice is a user error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if requested == "cuda" and not cuda:
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is available here; "
                          "use --device cpu or auto")
    if requested == "mps" and not mps:
        raise ConfigError("--device mps was asked for, but MPS is not available here; "
                          "use --device cpu or auto")
    if requested not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device '{requested}'; choose auto, cpu, cuda or mps")
    return torch.device(requested)
