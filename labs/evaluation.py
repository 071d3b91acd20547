"""The default `Lab.evaluate`: test metrics of reloaded torch models, for `lab eval <run>`.

Classification: accuracy and mean cross-entropy (binary cross-entropy for one-logit models),
the numbers `run.fit` reports as `test_acc` / `test_loss`. Regression: mean squared error as
`test_loss`. Batches come from `make_loader`, so lazy test splits work too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from labs.data import Dataset, make_loader
from labs.errors import LabError


def evaluate(models: dict[str, Any], data: Dataset, *, split: str = "test",
             batch_size: int = 4096, lab: str = "this lab") -> dict[str, float]:
    """Metrics of every torch module in `models` on `split`, prefixed `<name>/` when named."""
    # containers (ModuleDict, ModuleList) have no forward of their own: nothing to call
    nets = {n: m for n, m in models.items() if isinstance(m, torch.nn.Module)
            and type(m).forward is not torch.nn.Module.forward}
    if not nets:
        raise LabError(f"{lab} saves no torch model that takes the test inputs: it must "
                       f"define evaluate()")
    if not data.supervised:
        raise LabError(f"{lab} has unlabelled data: its own evaluate() says what to measure")
    out: dict[str, float] = {}
    for name, net in nets.items():
        prefix = f"{name}/" if name and len(nets) > 1 else ""
        for key, value in _metrics(net, data, split, batch_size).items():
            out[f"{prefix}{split}_{key}"] = value
    return out


@torch.no_grad()
def _metrics(net: torch.nn.Module, data: Dataset, split: str, batch_size: int
             ) -> dict[str, float]:
    p = next(iter(net.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    was_training = net.training
    net.eval()
    loss, correct, n = 0.0, 0, 0
    try:
        for x, y in make_loader(data.split(split), batch_size, device=device, shuffle=False):
            out = net(x)
            if data.n_classes > 0:
                if out.ndim == 1 or out.shape[-1] == 1:  # one logit: binary
                    logit = out.reshape(-1).float()
                    loss += float(F.binary_cross_entropy_with_logits(
                        logit, y.reshape(-1).float(), reduction="sum"))
                    pred = (logit > 0).long()
                else:
                    loss += float(F.cross_entropy(out.float(), y.long(), reduction="sum"))
                    pred = out.argmax(-1)
                correct += int((pred == y.reshape(pred.shape).long()).sum())
            else:
                # the mean over a batch's elements, weighted by its rows: as run.fit's loss
                loss += float(F.mse_loss(out.float().reshape(y.shape), y.float())) * len(y)
            n += len(y)
    finally:
        net.train(was_training)
    res = {"loss": loss / max(n, 1)}
    if data.n_classes > 0:
        res = {"acc": correct / max(n, 1), **res}
    return res
