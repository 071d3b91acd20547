"""A simple RNN, an LSTM and a GRU on two generated sequence tasks: forecasting a seasonal time
series, and remembering an early element across a growing stretch of noise.

1. Forecasting: a series of two sines (periods `period` and 6.5x `period`) plus Gaussian noise
   is cut into windows of `window` steps; each model reads a window and predicts the next
   value. The split is chronological (train on the past, test on the last part of the
   series), and the models are compared with the naive forecast (the last value) and the
   seasonal-naive one (the value one period back). LIME explains a forecast in regression
   mode with the window's time steps (t-1, t-2, ...) as the features.
2. Memory: the class of a sequence is the sign of its FIRST element, followed by `L` steps of
   noise; the model sees only its last hidden state. Accuracy against `L` for each cell:
   the plain RNN's gradient through tanh(W h) shrinks at every step back (the vanishing
   gradient), so it falls to chance as `L` grows, while the gated cells carry the first value
   along their additive memory path.

The gate that keeps a cell's state starts biased towards remembering (PyTorch adds two bias
vectors, b_ih and b_hh, and both get the value). The LSTM's forget gate starts at `forget_bias`
= 2 each: sigmoid(4) = 0.98 per step, a memory time constant of about 50 steps, the longest
default L (chrono initialization, Tallec & Ollivier 2018, sets the forget bias to about the log
of the dependency length: log 50 = 3.9). At 1 each (sigmoid(2) = 0.88) the LSTM stalled at
0.8-0.9 at L=50 on seeds 0 and 3; set `forget_bias=1` to see it. The GRU's update gate starts
at `gate_bias` = 1 each: its update gate z also scales what is written (h' = (1 - z) n + z h),
so a larger bias mutes the first element too (at 2 the GRU needed about 10 epochs at L=50 and
forecast worse). `benchmarks/bench_rnn_sequence.py` measures the lesson over seeds: the plain
RNN sometimes finds a way to hold the first element (on 2 of seeds 0-9 within the 12 epochs):
the vanishing gradient makes a long dependency hard to find, not impossible.
Gradient clipping is on (the exploding-gradient lesson), so `train_grad_norm` is logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from labs import (
    ConfigError,
    Dataset,
    Lab,
    Split,
    SplitConfig,
    Subject,
    default_subject,
    option,
    variants,
)

CELLS = ("rnn", "lstm", "gru")


@dataclass
class Config(SplitConfig):
    hidden: int = option(32, "hidden units of every cell", min=1)
    forget_bias: float = option(2.0, "initial biases (b_ih and b_hh each) of the LSTM's forget "
                                     "gate: 2 each starts it at sigmoid(4) = 0.98, a memory of "
                                     "~50 steps (0: no head start)")
    gate_bias: float = option(1.0, "initial biases (b_ih and b_hh each) of the GRU's update "
                                   "gate (1: remember by default; 0: no head start)")
    series_len: int = option(3000, "points of the generated time series", min=100)
    window: int = option(24, "past values a forecaster reads", min=2)
    period: int = option(24, "season length of the series (the seasonal-naive lag)", min=2)
    noise: float = option(0.1, "standard deviation of the series' noise", min=0)
    lengths: list[int] = option([5, 10, 20, 35, 50], "memory task: noise steps L after the "
                                                     "element that decides the class")
    n_seqs: int = option(3000, "memory task: sequences per length", min=30)
    memory_noise: float = option(1.0, "memory task: standard deviation of the noise steps",
                                 min=0)
    epochs: int = option(12, "passes over the training data")
    lr: float = option(3e-3, "learning rate (Adam)")
    grad_clip: float = option(1.0, "clip the gradient's global norm to this (0: off); on by "
                                   "default against exploding recurrent gradients", min=0)
    test_size: float = option(0.2, "held-out fraction (the forecast's is the series' end)",
                              gt=0, lt=1)
    explain_samples: int = option(2, "test windows LIME explains after training", min=1)
    explain_num_samples: int = option(500, "LIME perturbations per explanation", min=10)

    def validate(self) -> None:
        super().validate()
        if not self.lengths or min(self.lengths) < 1:
            raise ConfigError(f"lengths must be a non-empty list of positive integers, got "
                              f"{self.lengths}")
        if len(set(self.lengths)) != len(self.lengths):
            raise ConfigError(f"lengths has a repeated value: {self.lengths}")
        if self.series_len * self.test_size < 2 * self.window:
            raise ConfigError(f"series_len={self.series_len} leaves too few test points for "
                              f"window={self.window}: make it longer or the window shorter")


# -- the data ----------------------------------------------------------------------------------

def series(n: int, period: int, noise: float, seed: int) -> np.ndarray:
    """Two sines (periods `period` and 6.5 `period`) plus Gaussian noise, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    clean = np.sin(2 * np.pi * t / period) + 0.5 * np.sin(2 * np.pi * t / (6.5 * period) + 1.0)
    return (clean + rng.normal(0, noise, n)).astype(np.float32)


def windows(y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, window): y[t-window .. t-1], targets (n,): y[t])."""
    x = np.lib.stride_tricks.sliding_window_view(y[:-1], window)
    return np.ascontiguousarray(x), y[window:].copy()


def memory_task(n: int, length: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, 1 + length), y (n,)): x[:, 0] is -1 or +1 and the class (0 or 1); then noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, noise, (n, length + 1)).astype(np.float32)
    x[:, 0] = 2 * y - 1
    return x, y


def _splits(x: np.ndarray, y: np.ndarray, cfg: Config) -> dict[str, Split | None]:
    """Consecutive train / val / test parts (the series' order; memory sequences are i.i.d.)."""
    n = len(x)
    n_test = max(1, int(round(cfg.test_size * n)))
    n_val = int(round(cfg.val_size * n))
    n_train = n - n_test - n_val
    cut = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val),
           "test": slice(n_train + n_val, n)}
    return {k: Split(torch.from_numpy(x[c]), torch.from_numpy(y[c])) if c.stop > c.start
            else None for k, c in cut.items()}


# -- the model ---------------------------------------------------------------------------------

def keep_bias(cfg: Config, cell: str) -> float:
    """The initial bias of the gate that keeps a cell's old state (none for the plain RNN)."""
    return {"lstm": cfg.forget_bias, "gru": cfg.gate_bias}.get(cell, 0.0)


class SequenceNet(nn.Module):
    """(batch, steps) values -> a recurrent cell over the steps -> last hidden state -> a
    linear read-out: `n_out=1` gives one forecast per sequence (shape (batch,)), more give
    class logits."""

    def __init__(self, cell: str, hidden: int, n_out: int = 1, gate_bias: float = 1.0) -> None:
        super().__init__()
        self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](1, hidden,
                                                                         batch_first=True)
        self.out = nn.Linear(hidden, n_out)
        # PyTorch's gate order: LSTM (input, forget, cell, output), GRU (reset, update, new);
        # the second block is the gate that keeps the old state (both bias vectors: 2 in all).
        if cell in ("lstm", "gru"):
            with torch.no_grad():
                for b in (self.rnn.bias_ih_l0, self.rnn.bias_hh_l0):
                    b[hidden:2 * hidden] = gate_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x.float().unsqueeze(-1))
        out = self.out(h[:, -1])
        return out.squeeze(-1) if out.shape[-1] == 1 else out


# -- the lab -----------------------------------------------------------------------------------

class RNNSequence(Lab):
    """Simple RNN vs LSTM vs GRU: forecasting a time series, and remembering an early value."""

    lesson = "rnn"
    tags = ("supervised", "rnn", "time-series")
    explains = "tabular"
    headline = "lstm_test_mse"
    Config = Config

    def data(self, cfg: Config) -> Dataset:
        """The forecasting windows (what `lab explain` and LIME see)."""
        x, y = windows(series(cfg.series_len, cfg.period, cfg.noise, cfg.seed), cfg.window)
        parts = _splits(x, y, cfg)
        return Dataset(train=parts["train"], val=parts["val"], test=parts["test"],
                       feature_names=[f"t-{cfg.window - j}" for j in range(cfg.window)])

    def memory_data(self, cfg: Config, length: int) -> Dataset:
        x, y = memory_task(cfg.n_seqs, length, cfg.memory_noise, cfg.seed + length)
        parts = _splits(x, y, cfg)
        return Dataset(train=parts["train"], val=parts["val"], test=parts["test"], n_classes=2,
                       class_names=["first < 0", "first > 0"])

    def model(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        models = {f"L{length}-{cell}": SequenceNet(cell, cfg.hidden, 2, keep_bias(cfg, cell))
                  for length in cfg.lengths for cell in CELLS}
        models.update({f"forecast-{cell}": SequenceNet(cell, cfg.hidden, 1,
                                                       keep_bias(cfg, cell))
                       for cell in CELLS})
        return models

    def run(self, cfg: Config, run) -> dict:
        models = self.model(cfg, None)
        metrics: dict = {}
        # memory first, forecasting last: the run's data (LIME's) is then the forecast's
        accs: dict[str, dict[int, float]] = {cell: {} for cell in CELLS}
        fits = {}
        for length in cfg.lengths:
            res = variants.fit_all(run, {c: models[f"L{length}-{c}"] for c in CELLS},
                                   self.memory_data(cfg, length), prefix=f"L{length}-",
                                   loss=nn.CrossEntropyLoss())
            for cell, r in res.items():
                accs[cell][length] = r.test["acc"]
                metrics[f"{cell}_acc_L{length}"] = r.test["acc"]
            fits[length] = res
        run.figure("memory", memory_figure(accs, cfg))
        run.figure("grad_norm", variants.curves(
            fits[max(cfg.lengths)], "train_grad_norm", logy=True,
            title=f"mean pre-clip gradient norm, L={max(cfg.lengths)}"))
        run.table("memory", ["L", *CELLS], [[length, *(accs[c][length] for c in CELLS)]
                                            for length in cfg.lengths])

        data = self.data(cfg)
        res = variants.fit_all(run, {c: models[f"forecast-{c}"] for c in CELLS}, data,
                               prefix="forecast-", loss=nn.MSELoss(), metrics=())
        variants.log_table(run, "forecast", res)
        run.figure("curves", variants.curves(res, "val_loss", logy=True,
                                             title="forecast: validation MSE"))
        mse = {cell: r.test["loss"] for cell, r in res.items()}
        mse.update(baselines(data, cfg))
        run.figure("forecast_mse", variants.bars(mse, "test MSE (one step ahead)",
                                                 title=f"noise variance {cfg.noise ** 2:.3g}"))
        preds = {cell: predict(r.fit.model, data.test.x) for cell, r in res.items()}
        run.figure("forecast", forecast_figure(data, preds, cfg))
        metrics.update({f"{name}_test_mse": v for name, v in mse.items()})
        return metrics

    def evaluate(self, cfg: Config, models: dict, data: Dataset) -> dict:
        """Test MSE of the forecasters and the baselines; memory accuracy per cell and L."""
        out = {}
        for cell in CELLS:
            p = predict(models[f"forecast-{cell}"], data.test.x)
            out[f"{cell}_test_mse"] = float(((p - data.test.y.numpy()) ** 2).mean())
        out.update({f"{k}_test_mse": v for k, v in baselines(data, cfg).items()})
        for length in cfg.lengths:
            test = self.memory_data(cfg, length).test
            for cell in CELLS:
                logits = predict(models[f"L{length}-{cell}"], test.x)
                out[f"{cell}_acc_L{length}"] = float((logits.argmax(-1) == test.y.numpy())
                                                     .mean())
        return out

    def subjects(self, cfg: Config, model, data: Dataset) -> dict[str, Subject]:
        """The forecasters only, in regression mode: the features are the window's steps."""
        models = model if isinstance(model, dict) else {"forecast-lstm": model}
        return {name: default_subject("tabular", m, data, cfg)
                for name, m in models.items() if name.startswith("forecast-")}


def predict(model: nn.Module, x: torch.Tensor, batch: int = 4096) -> np.ndarray:
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        return np.concatenate([model(x[s:s + batch].to(device)).float().cpu().numpy()
                               for s in range(0, len(x), batch)])


def baselines(data: Dataset, cfg: Config) -> dict[str, float]:
    """Test MSE of the naive (last value) and, when the window reaches a period back, the
    seasonal-naive (the value `period` steps back) forecasts."""
    x, y = data.test.x.numpy(), data.test.y.numpy()
    out = {"naive": float(((x[:, -1] - y) ** 2).mean())}
    if cfg.window >= cfg.period:
        out["seasonal_naive"] = float(((x[:, -cfg.period] - y) ** 2).mean())
    return out


def forecast_figure(data: Dataset, preds: dict[str, np.ndarray], cfg: Config,
                    show: int = 150) -> Figure:
    """The start of the test period: truth, each model's one-step forecast, the naive one."""
    y = data.test.y.numpy()[:show]
    t = np.arange(len(y))
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(t, y, color="black", lw=2, label="truth")
    ax.plot(t, data.test.x.numpy()[:show, -1], color="grey", ls=":", label="naive (last value)")
    for cell, p in preds.items():
        ax.plot(t, p[:show], lw=1, label=cell)
    ax.set_xlabel("test step (the series' last part, never trained on)")
    ax.set_ylabel("value")
    ax.set_title(f"one-step forecasts from a {cfg.window}-step window")
    ax.legend(fontsize=8, ncol=5)
    ax.grid(alpha=0.3)
    return fig


def memory_figure(accs: dict[str, dict[int, float]], cfg: Config) -> Figure:
    """Test accuracy against the dependency length L, one line per cell, chance at 0.5."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for cell, by_len in accs.items():
        lengths = sorted(by_len)
        ax.plot(lengths, [by_len[n] for n in lengths], marker="o", label=cell)
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax.set_ylim(0.4, 1.02)
    ax.set_xlabel("L: noise steps between the deciding element and the answer")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"remembering the first element ({cfg.epochs} epochs, {cfg.hidden} units)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
