"""Look inside a network while it trains: per-layer gradient norms, activations, weight paths.

The foundations labs (activations, weight-init, gd-optimizers) show what happens *inside*
training: gradients that vanish layer by layer, activations that saturate, the path an
optimizer takes over a loss surface. These are `Callback`s for `run.fit(callbacks=[...])` and
two one-shot functions, so every lab measures them the same way:

>>> norms = probes.GradientNorms(model)             # mean |grad W| per Linear layer per epoch
>>> trace = probes.ParamTrace(model[0].weight)      # the weights after every step
>>> fit = run.fit(model, data, callbacks=[norms, trace])
>>> norms.history["0"]                              # one mean norm per epoch, first layer
>>> acts = probes.activations(model, x)            # {layer: output} of each activation layer
>>> grads = probes.gradients(model, loss_fn, x, y) # {layer: dLoss/dW} of each Linear layer
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from labs.trainer import Callback

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.SiLU, nn.Identity)


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The model's `nn.Linear` layers in order, by their module names ("1", "3", ...)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


class GradientNorms(Callback):
    """The L2 norm of each Linear layer's weight gradient, averaged over every batch of an
    epoch: `history[layer]` is one number per epoch, `first[layer]` the first batch's."""

    def __init__(self, model: nn.Module, key: str = "GradientNorms"):
        self.layers = linear_layers(model)
        self.history: dict[str, list[float]] = {n: [] for n, _ in self.layers}
        self.first: dict[str, float] = {}
        self._key = key
        self._sum: list[torch.Tensor] | None = None
        self._count = 0

    @property
    def state_key(self) -> str:
        return self._key

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self._sum, self._count = None, 0

    def on_batch_end(self, trainer: Any, batch_idx: int, batch: Any, out: dict) -> None:
        # the step leaves the gradients in place after optimizer.step(): read them here,
        # summed on the device (one host sync per epoch, not per batch)
        norms = [m.weight.grad.detach().norm() if m.weight.grad is not None
                 else torch.zeros((), device=m.weight.device) for _, m in self.layers]
        if not self.first:
            self.first = {n: float(v) for (n, _), v in zip(self.layers, norms, strict=True)}
        self._sum = norms if self._sum is None else [a + b for a, b in
                                                      zip(self._sum, norms, strict=True)]
        self._count += 1

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        if self._sum is None:
            return
        for (n, _), s in zip(self.layers, self._sum, strict=True):
            self.history[n].append(float(s) / self._count)

    def mean(self) -> dict[str, float]:
        """Each layer's gradient norm averaged over all epochs."""
        return {n: float(np.mean(v)) if v else float("nan") for n, v in self.history.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "first": self.first}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = {k: list(v) for k, v in state.get("history", {}).items()}
        self.first = dict(state.get("first", {}))


class ParamTrace(Callback):
    """The values of some parameters before training and after every step: `points` is an
    array (steps + 1, number of values), e.g. the path of a 2-weight model on its loss surface."""

    def __init__(self, params: Iterable[torch.Tensor] | torch.Tensor, key: str = "ParamTrace"):
        self.params = [params] if isinstance(params, torch.Tensor) else list(params)
        self._key = key
        self._points: list[np.ndarray] = []

    @property
    def state_key(self) -> str:
        return self._key

    def _snap(self) -> None:
        self._points.append(torch.cat([p.detach().reshape(-1).cpu() for p in self.params])
                            .numpy().copy())

    def on_fit_start(self, trainer: Any) -> None:
        if not self._points:
            self._snap()

    def on_batch_end(self, trainer: Any, batch_idx: int, batch: Any, out: dict) -> None:
        self._snap()

    @property
    def points(self) -> np.ndarray:
        return np.stack(self._points) if self._points else np.zeros((0, 0))


@torch.no_grad()
def activations(model: nn.Module, x: torch.Tensor,
                types: Sequence[type[nn.Module]] = ACTIVATION_TYPES) -> dict[str, torch.Tensor]:
    """The output of every activation layer (by module name) for inputs `x`, in eval mode."""
    out: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: out.__setitem__(n, o.detach()))
             for n, m in model.named_modules() if isinstance(m, tuple(types))]
    was = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return out


def gradients(model: nn.Module, loss_fn: Any, x: torch.Tensor, y: torch.Tensor
              ) -> dict[str, torch.Tensor]:
    """dLoss/dW of each Linear layer for one batch (the model's own gradients are untouched)."""
    layers = linear_layers(model)
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, [m.weight for _, m in layers])
    return {n: g.detach() for (n, _), g in zip(layers, grads, strict=True)}


def histograms(values: dict[str, torch.Tensor], *, title: str = "", bins: int = 40,
               xlabel: str = "value"):
    """One histogram per layer, side by side (activations or gradients by layer name)."""
    return histogram_grid({"": values}, title=title, bins=bins, xlabel=xlabel)


def histogram_grid(rows: dict[str, dict[str, torch.Tensor]], *, title: str = "",
                   bins: int = 40, xlabel: str = "value"):
    """A row of per-layer histograms for each entry of `rows` (e.g. one row per
    initialization scheme), layers in columns."""
    from matplotlib.figure import Figure

    n_rows = max(1, len(rows))
    n_cols = max([1, *(len(v) for v in rows.values())])
    # fixed margins, not constrained layout: that costs seconds per figure on a 7 x 7 grid
    height = 1.9 * n_rows + 0.8
    fig = Figure(figsize=(2.1 * n_cols + 0.8, height))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / height, top=1 - 0.55 / height,
                        hspace=0.55, wspace=0.3)
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    for r, (row_name, values) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(values):
                ax.set_axis_off()
                continue
            name, v = list(values.items())[c]
            a = v.detach().float().reshape(-1).cpu().numpy()
            a = a[np.isfinite(a)]
            ax.hist(a, bins=bins, color="tab:blue")
            ax.set_title(f"{name}: std {a.std():.2g}" if a.size else name, fontsize=8)
            ax.tick_params(labelsize=6)
            if c == 0 and row_name:
                ax.set_ylabel(row_name, fontsize=9)
            if r == n_rows - 1:
                ax.set_xlabel(xlabel, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
