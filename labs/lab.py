"""The `Lab` base class: what a lab declares and the hooks the framework calls.

A lab declares a summary (its docstring's first line), tags, a `Config` dataclass and the kind
of input it explains; it implements `run()`. Labs that can be reloaded from a saved run
(`lab explain`, `lab eval`) also implement `data()` and `model()`, which `run()` itself uses.

Saving and reloading is a protocol with defaults for torch modules: after `run()` the framework
calls `save(run_dir, models)` with the models the run kept (`run.fit`, `run.save_model`), and
`lab explain` / `lab eval` call `load(run_dir, cfg, data)` to get them back without retraining,
then `subjects()` or `evaluate()`. A lab whose state is more than module weights (an SB3 zip, a
replay buffer, a vocabulary) overrides `save` and `load` together.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from labs.config import TrainConfig

if TYPE_CHECKING:
    from explain import Subject
    from labs.context import Run
    from labs.data import Dataset


# The course's lessons, in teaching order: `lab info` names a lab's lesson and the README's
# lab table groups labs by it, so a teacher can map the course onto the catalogue.
LESSONS: dict[str, str] = {
    "perceptron": "The perceptron",
    "logistic": "Logistic regression",
    "backprop": "Backpropagation",
    "mlp": "Multilayer perceptrons",
    "optimizers": "Gradient descent and optimizers",
    "activations": "Activation functions",
    "initialization": "Weight initialization",
    "losses": "Loss functions",
    "regularization": "Regularization",
    "tabular": "Neural networks on tabular data",
    "hyperparameters": "Hyperparameter search",
    "strategy": "Machine-learning strategy",
    "cnn": "Convolutional networks",
    "transfer": "Transfer learning and few labels",
    "rnn": "Recurrent networks and text",
    "autoencoders": "Autoencoders and VAEs",
    "gans": "Generative adversarial networks",
    "rl": "Reinforcement learning",
}


class Lab:
    """Base class of every lab. Subclass it, set `Config`, implement `run`."""

    name: ClassVar[str] = ""  # set from the entry point name when the registry loads the lab
    source: ClassVar[str] = ""  # the distribution that registered it
    summary: ClassVar[str] = ""  # defaults to the first line of the class docstring
    tags: ClassVar[tuple[str, ...]] = ()
    explains: ClassVar[str] = "none"  # "image", "tabular", ... or "none"
    headline: ClassVar[str] = ""  # the metric `lab runs` shows (default: the first returned)
    lesson: ClassVar[str] = ""  # the course lesson it belongs to: a key of LESSONS
    Config: ClassVar[type] = TrainConfig

    def run(self, cfg: Any, run: Run) -> dict[str, float]:
        """Train and evaluate; return the final metrics (they go to summary.json)."""
        raise NotImplementedError(f"{type(self).__name__} must implement run(cfg, run)")

    def data(self, cfg: Any) -> Dataset:
        """The lab's dataset (needed to reload a run)."""
        raise NotImplementedError

    def model(self, cfg: Any, data: Dataset) -> Any:
        """A fresh, untrained model (needed to reload a run)."""
        raise NotImplementedError

    def save(self, path: Path, models: dict[str, Any]) -> None:
        """Keep what the run trained in its directory `path`, for `lab explain` / `lab eval`.

        Called once after `run()` with the models the run kept, by name. The default writes
        each torch module's state dict to `checkpoints/[<name>/]model.pt` (as `{"model": ...}`,
        atomically). Override it (and `load`) to save anything else; a checkpoint may hold
        tensors, numpy arrays and plain Python containers, never pickled objects.
        """
        from labs import checkpoint

        for name, model in models.items():
            if not hasattr(model, "state_dict"):
                raise TypeError(f"{type(self).__name__}.save: model '{name}' is a "
                                f"{type(model).__name__}, not a torch module; override "
                                f"save() and load() to keep it")
            checkpoint.save({"model": model.state_dict()}, checkpoint.model_path(path, name))

    def load(self, path: Path, cfg: Any, data: Dataset) -> dict[str, Any]:
        """The trained models of the run in `path`, by name, ready to predict (eval mode).

        The default builds fresh models with `model(cfg, data)` and loads the weights `save`
        wrote. When `model()` returns a dict, its keys are the names; when it returns one
        model, one fresh copy is built for each model the run saved.
        """
        from labs import checkpoint

        built = self.model(cfg, data)
        if isinstance(built, dict):
            models = dict(built)
        else:
            names = checkpoint.saved_models(path) or [""]
            models = {name: built if i == 0 else self.model(cfg, data)
                      for i, name in enumerate(names)}
        for name, model in models.items():
            ckpt = checkpoint.model_path(path, name)
            checkpoint.load_weights(model, checkpoint.load(ckpt, require=("model",))["model"],
                                    ckpt)
            model.eval()
        return models

    def evaluate(self, cfg: Any, models: dict[str, Any], data: Dataset) -> dict[str, float]:
        """Metrics of reloaded models on the test split (`lab eval`). The default: accuracy and
        cross-entropy for classification, mean squared error for regression, per torch
        module (`<name>/test_acc` when there are several). Override it for anything else:
        a VAE's ELBO, a GAN's scores, an agent's mean return, or models `variants.fit_all`
        trained on data of their own (which `lab eval` leaves out while this default stands)."""
        from labs.evaluation import evaluate

        return evaluate(models, data, lab=self.name or type(self).__name__)

    def sample(self, cfg: Any, models: dict[str, Any], n: int, seed: int) -> Any:
        """`lab sample <run>`: `n` new samples from the reloaded models, drawn with `seed`, as
        an array of images (n, H, W) or (n, H, W, C) with values in [0, 1]. Generative labs
        override it; the default says the lab does not generate."""
        from labs.errors import LabError

        raise LabError(f"lab '{self.name or type(self).__name__}' does not generate samples: "
                       f"`lab sample` works on generative runs (vae, gan, dcgan, ...)")

    def subjects(self, cfg: Any, model: Any, data: Dataset) -> dict[str, Subject]:
        """What to explain, by name. The default builds one subject of kind `explains` from
        the dataset's test split and metadata, per model when `model` is a dict of several
        (each explained in its own sub-folder); override to add ground truth. While this
        default stands, `lab explain` leaves out models trained on data of their own."""
        from labs.explaining import default_subject

        if self.explains == "none":
            return {}
        if isinstance(model, dict) and len(model) > 1:
            return {name: default_subject(self.explains, m, data, cfg)
                    for name, m in model.items()}
        return {"": default_subject(self.explains, model, data, cfg)}

    def describe_input(self, cfg: Any, models: dict[str, Any], data: Dataset, inputs: Any,
                       out_dir: Path) -> list[str]:
        """Lines `lab explain <run> --input ...` prints about the one input besides LIME's
        prediction (a translation, say), with any figure written to `out_dir`. Default: none.
        """
        return []

    @classmethod
    def describe(cls) -> str:
        if cls.summary:
            return cls.summary
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
