"""The `Lab` base class: what a lab declares and the hooks the framework calls.

A lab declares a summary (its docstring's first line), tags, a `Config` dataclass and the kind
of input it explains; it implements `run()`. Labs that can be reloaded from a saved run
(`lab explain`, `lab eval`) also implement `data()` and `model()`, which `run()` itself uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from labs.config import TrainConfig

if TYPE_CHECKING:
    from explain import Subject
    from labs.data import Dataset
    from labs.context import Run


class Lab:
    """Base class of every lab. Subclass it, set `Config`, implement `run`."""

    name: ClassVar[str] = ""  # set from the entry point name when the registry loads the lab
    source: ClassVar[str] = ""  # the distribution that registered it
    summary: ClassVar[str] = ""  # defaults to the first line of the class docstring
    tags: ClassVar[tuple[str, ...]] = ()
    explains: ClassVar[str] = "none"  # "image", "tabular", ... or "none"
    headline: ClassVar[str] = ""  # the metric `lab runs` shows (default: the first returned)
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

    def subjects(self, cfg: Any, model: Any, data: Dataset) -> dict[str, Subject]:
        """What to explain, by name. The default builds one subject of kind `explains` from
        the dataset's test split and metadata; override to add ground truth or several models."""
        from labs.explaining import default_subject

        if self.explains == "none":
            return {}
        return {"": default_subject(self.explains, model, data, cfg)}

    @classmethod
    def describe(cls) -> str:
        if cls.summary:
            return cls.summary
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
