"""The lab framework: every deep-learning and RL experiment is a lab that runs with one command.

This module is the public API, for plugin authors and notebooks alike; the built-in labs use
nothing else. Names are loaded on first use, so `import labs` (and `lab list`) stays free of
torch.

    from labs import Lab, TrainConfig, option, datasets, plots, models

    @dataclass
    class Config(TrainConfig):
        hidden: list[int] = option([64], "hidden layer widths")

    class MyLab(Lab):
        "One line that `lab list` shows."
        Config = Config
        def run(self, cfg, run): ...

    from labs import run
    result = run("digits-mlp", epochs=5, hidden=[128])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # writing a lab
    "Lab": "labs.lab",
    "LabConfig": "labs.config",
    "TrainConfig": "labs.config",
    "SplitConfig": "labs.config",
    "option": "labs.config",
    # the run context and the shared trainer
    "Run": "labs.context",
    "FitResult": "labs.context",
    "Trainer": "labs.trainer",
    "Callback": "labs.trainer",
    # pieces a custom training / evaluation step uses
    "supervised_step": "labs.trainer",
    "supervised_eval_step": "labs.trainer",
    "forward": "labs.trainer",
    "split_batch": "labs.trainer",
    "to_device": "labs.data",
    "History": "labs.trainer",
    "augmented_step": "labs.trainer",
    "Tracker": "labs.tracker",
    # loops of a lab's own (an RL agent's): the same device rule and resumable RNG state
    "choose_device": "labs.device:choose",
    "rng_state": "labs.trainer",
    "set_rng_state": "labs.trainer",
    "rng_untouched": "labs.trainer",  # once-per-process work inside a run draws nothing
    # data
    "Dataset": "labs.data",
    "Split": "labs.data",
    "TensorLoader": "labs.data",
    "make_loader": "labs.data",
    "image_options": "labs.vision_data",  # dataset / data_dir / download of an image lab
    "ImageOptions": "labs.vision_data",
    # explanations
    "Subject": "explain",
    "torch_predict": "explain",
    "default_subject": "labs.explaining",
    # running labs from Python
    "run": "labs.runner:run",
    "Result": "labs.runner",
    # errors
    "LabError": "labs.errors",
    "ConfigError": "labs.errors",
    "DataNotFound": "labs.errors",
    "CheckpointError": "labs.errors",
}
_MODULES = {"datasets", "plots", "models", "checkpoint", "callbacks", "registry", "config",
            "images", "variants", "crossval", "probes", "backbones"}

__all__ = sorted(_EXPORTS) + sorted(_MODULES)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"labs.{name}")
    if name in _EXPORTS:
        module, _, attr = _EXPORTS[name].partition(":")
        value = getattr(importlib.import_module(module), attr or name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labs' has no attribute '{name}'")


def __dir__() -> list[str]:
    return __all__
