"""Model builders shared by labs."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
               "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}


def mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: str = "relu",
        dropout: float = 0.0) -> nn.Sequential:
    """A dense network: Flatten, then Linear + activation (+ dropout) per hidden width, then a
    Linear output layer (logits: the softmax lives in the cross-entropy loss)."""
    if activation not in ACTIVATIONS:
        from labs.errors import ConfigError

        raise ConfigError(f"unknown activation '{activation}'; choose {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)
