"""`torch_predict`: a torch module as the numpy predict function LIME needs.

LIME queries the model with ~1000 perturbed inputs at once; running them as one (or a few)
batched forward passes on the model's own device is what keeps an explanation cheap.
torch is imported inside the function so `import explain` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def torch_predict(model, device=None, *, softmax: bool = True, batch_size: int = 4096,
                  input_shape: Sequence[int] | None = None
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a torch module as a numpy predict function.

    The returned function takes (N, ...) numpy inputs, reshapes them to (N, *input_shape) when
    input_shape is given, runs forward passes of at most `batch_size` rows on the model's device
    (default: the device of its first parameter or buffer, else cpu) under
    torch.inference_mode() with the model in eval mode (its previous train/eval mode is put
    back afterwards), applies softmax over the last dim if `softmax`, and returns float32 numpy.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tensors = [*model.parameters(), *model.buffers()]
    if device is None:
        device = tensors[0].device if tensors else torch.device("cpu")
    device = torch.device(device)
    # Feed the model its own floating dtype (a float64 or half model fails on float32 input).
    floats = [t.dtype for t in tensors if t.is_floating_point()]
    dtype = floats[0] if floats else torch.float32
    shape = tuple(input_shape) if input_shape is not None else None

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        n = len(x)
        if shape is not None:
            x = x.reshape((n, *shape))
        was_training = model.training
        model.eval()
        outs = []
        try:
            with torch.inference_mode():
                for start in range(0, n, batch_size):
                    xb = torch.as_tensor(np.ascontiguousarray(x[start:start + batch_size]))
                    out = model(xb.to(device=device, dtype=dtype))
                    if softmax:
                        out = torch.softmax(out.float(), dim=-1)
                    outs.append(out.float().cpu().numpy())
        finally:
            model.train(was_training)
        if not outs:
            raise ValueError("torch_predict got an empty batch")
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    return predict
