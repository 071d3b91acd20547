"""Train several variants of a model on the shared trainer and compare them.

The foundations, CNN and transfer labs all ask "what changes if only X changes?" (the
activation, the initialization, the optimizer, the architecture). Each variant is one named
`run.fit`, so its metrics land on their own axis (`<name>/epoch`), its checkpoints in
`checkpoints/<name>/` and its model is reloadable by name; this module only loops, times and
tabulates, so every comparing lab reads the same way:

>>> results = variants.fit_all(run, {"sigmoid": mlp("sigmoid"), "relu": mlp("relu")}, data,
...                            loss=nn.CrossEntropyLoss())
>>> run.figure("curves", variants.curves(results, "val_loss"))
>>> variants.log_table(run, "comparison", results)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from torch import nn

    from labs.context import FitResult, Run
    from labs.data import Dataset


@dataclass
class Variant:
    """One variant: its model and whatever differs from the common `run.fit` arguments
    (its own data, loss, optimizer, epochs...)."""

    model: nn.Module
    data: Dataset | None = None
    fit: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """A trained variant: the fit, its wall time, parameter count and test metrics."""

    name: str
    fit: FitResult | None
    seconds: float
    params: int
    diverged: str = ""  # why training stopped (`TrainingDiverged`'s message); "" when it did not
    partial: Any = None  # the epochs completed before a divergence (a History)

    @property
    def test(self) -> dict[str, float]:
        return self.fit.test if self.fit is not None else {}

    @property
    def history(self) -> Any:
        return self.fit.history if self.fit is not None else self.partial

    def row(self) -> dict[str, float]:
        """The variant's headline numbers (a row of the comparison table)."""
        epochs = max(1, len(self.history.epochs))
        last = self.history.last
        row = {"params": float(self.params), "seconds": self.seconds,
               "s_per_epoch": self.seconds / epochs}
        row.update({k: v for k, v in last.items() if k in ("train_loss", "train_acc")})
        row.update({f"test_{k}": v for k, v in self.test.items()})
        if self.diverged:
            row["status"] = "diverged"
        return row


# the `recorded:` key (config.yaml) of the fit names whose variant had data of its own:
# `lab eval` / `lab explain` leave those models out where the lab's default hooks would
# score them on its common data
OWN_DATA = "trained_on_own_data"


def fit_all(run: Run, variants: Mapping[str, nn.Module | Variant | Callable[[], Any]],
            data: Dataset | None = None, *, prefix: str = "", diverged: str = "raise",
            **common: Any) -> dict[str, Result]:
    """Train each variant with `run.fit(model, data, name=<prefix><name>, **common)`.

    A variant is a module, a `Variant` (its own data or fit arguments win over `common`), or
    a zero-argument callable returning either (built only when its turn comes, so fifty
    variants do not sit in memory together).

    `diverged="report"`: a variant whose loss becomes NaN/inf (`TrainingDiverged`) does not
    stop the others; its `Result` has `fit=None`, `diverged` set to the reason and `history`
    holding the epochs it completed (a too-large learning rate is a lesson, not a crash).

    The fit name of a variant with data of its own (`Variant(data=...)`, not `data`) is
    recorded with the run (`recorded: trained_on_own_data:` in config.yaml, accumulating over
    calls): the default `Lab.evaluate` / `Lab.subjects` would score it on the lab's common
    data, so `lab eval` / `lab explain` leave it out unless the lab overrides those hooks.
    """
    if diverged not in ("raise", "report"):
        raise ValueError(f"diverged= takes 'raise' or 'report', not {diverged!r}")
    from labs.errors import TrainingDiverged

    results: dict[str, Result] = {}
    for name, spec in variants.items():
        if callable(spec) and not hasattr(spec, "parameters"):
            spec = spec()
        if not isinstance(spec, Variant):
            spec = Variant(spec)
        vdata = spec.data if spec.data is not None else data
        if vdata is None:
            raise ValueError(f"variant '{name}' has no data: pass data= or Variant(data=...)")
        if spec.data is not None and spec.data is not data:  # recorded before it trains
            run.record({OWN_DATA: {f"{prefix}{name}": True}})
        kwargs = {**common, **spec.fit}
        params = sum(p.numel() for p in spec.model.parameters())
        epochs = _Epochs()
        if diverged == "report":
            kwargs["callbacks"] = [*kwargs.get("callbacks", ()), epochs]
        start = time.perf_counter()
        try:
            fit = run.fit(spec.model, vdata, name=f"{prefix}{name}", **kwargs)
        except TrainingDiverged as err:
            if diverged == "raise":
                raise
            results[name] = Result(name, None, time.perf_counter() - start, params,
                                   diverged=str(err), partial=epochs.history)
            continue
        results[name] = Result(name, fit, time.perf_counter() - start, params)
    if data is not None:  # `run.data` (what the run's explanations use) is the common data,
        run.data = data   # not the last variant's own
    return results


def _Epochs():  # noqa: N802  (builds a Callback; torch is imported only when a fit runs)
    from labs.trainer import Callback, History

    class Epochs(Callback):
        """Keeps each epoch's logs: all that is left of a fit that diverges."""

        state_key = "variants.Epochs"

        def __init__(self):
            self.history = History()

        def on_epoch_end(self, trainer, epoch, logs):
            self.history.epochs.append({"epoch": epoch, **logs})

    return Epochs()


def table(results: Mapping[str, Result], columns: Sequence[str] | None = None
          ) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the comparison: one row per variant."""
    rows = {name: r.row() for name, r in results.items()}
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows.values() for k in row))
    elif any(r.diverged for r in results.values()) and "status" not in columns:
        columns = [*columns, "status"]  # a diverged variant always says so
    return ["variant", *columns], [[name, *(row.get(c) for c in columns)]
                                   for name, row in rows.items()]


def log_table(run: Run, name: str, results: Mapping[str, Result],
              columns: Sequence[str] | None = None) -> list[list[Any]]:
    """Log the comparison table (W&B table, and printed by the run's summary) and return it."""
    cols, rows = table(results, columns)
    if "status" in cols:  # some variant diverged: say "ok" for the others
        i = cols.index("status")
        rows = [[*r[:i], r[i] or "ok", *r[i + 1:]] for r in rows]
    run.table(name, cols, rows)
    return rows


def curves(results: Mapping[str, Any], key: str = "val_loss", *, title: str = "",
           logy: bool = False, xlabel: str = "epoch") -> Figure:
    """One curve per variant of metric `key` over epochs (results: `Result`s or histories)."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for name, r in results.items():
        history = getattr(r, "history", r)
        points = [(e["epoch"], e[key]) for e in history.epochs if key in e]
        label = f"{name} (diverged)" if getattr(r, "diverged", "") else name
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=label)
        elif label != name:  # nothing finite to draw: still name it in the legend
            ax.plot([], [], ls="--", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(key)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or key)
    return fig


def bars(values: Mapping[str, float], ylabel: str, *, title: str = "",
         errors: Mapping[str, float] | None = None) -> Figure:
    """A bar per variant (e.g. test accuracy, mean over seeds with `errors` as the spread)."""
    fig = Figure(figsize=(max(4, 0.9 * len(values) + 1.5), 3.6), layout="constrained")
    ax = fig.add_subplot()
    names = list(values)
    err = [errors[n] for n in names] if errors else None
    ax.bar(names, [values[n] for n in names], yerr=err, capsize=3 if err else 0)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(alpha=0.3, axis="y")
    if title:
        ax.set_title(title)
    return fig
