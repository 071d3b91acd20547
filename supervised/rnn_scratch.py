"""A vanilla RNN written out in numpy, trained by backpropagation through time computed by hand.

The network reads one character at a time (one-hot x_t) and predicts the next one:

    h_t = tanh(U x_t + W h_{t-1} + b)      U: input -> hidden, W: hidden -> hidden
    y_t = V h_t + c                        V: hidden -> output (logits)
    p_t = softmax(y_t),   L = mean over t and the batch of -log p_t[next character]

Read it top to bottom: the parameters, the forward pass (which keeps every h_t), the backward
pass through time with each chain-rule step commented, the same gradients from torch's
autograd, a training loop with gradient clipping, and the vanishing gradient: how little of
the loss's gradient reaches a hidden state many steps back when W is small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from labs import ConfigError, Lab, LabConfig, option


@dataclass
class Config(LabConfig):
    text: str = option("hello world ", "the string repeated forever; the RNN learns its next "
                                       "character")
    hidden: int = option(32, "hidden units", min=1)
    seq_len: int = option(25, "characters per training sequence (BPTT length)", min=1)
    batch_size: int = option(16, "sequences per gradient step", min=1)
    steps: int = option(1000, "gradient steps", min=1)
    lr: float = option(0.5, "learning rate of plain gradient descent", gt=0)
    clip: float = option(5.0, "clip the gradient's global norm to this (0: off)", min=0)
    init_radius: float = option(0.5, "W starts as a Gaussian matrix with about this spectral "
                                     "radius (small: the gradient vanishes over time)", min=0)
    long_len: int = option(60, "length of the sequence the vanishing gradient is measured on",
                           min=2)
    log_every: int = option(25, "log the training loss every this many steps", min=1)

    def validate(self) -> None:
        super().validate()
        if len(set(self.text)) < 2:
            raise ConfigError(f"text={self.text!r} needs at least two different characters: "
                              f"with one, there is nothing to predict")


# -- the parameters ----------------------------------------------------------------------------

def init_params(vocab: int, hidden: int, radius: float, rng: np.random.Generator) -> dict:
    """U, W, V and the biases b, c. A Gaussian n x n matrix with entries of standard deviation
    r / sqrt(n) has its eigenvalues spread over a disc of radius about r (the circular law)."""
    return {"U": rng.normal(0, 1 / np.sqrt(vocab), (hidden, vocab)),
            "W": rng.normal(0, radius / np.sqrt(hidden), (hidden, hidden)),
            "V": rng.normal(0, 1 / np.sqrt(hidden), (vocab, hidden)),
            "b": np.zeros(hidden), "c": np.zeros(vocab)}


# -- the forward pass --------------------------------------------------------------------------

def forward(p: dict, xs: np.ndarray, h0: np.ndarray) -> dict:
    """xs: (T, B, vocab) one-hot inputs. Keeps every hidden state (hs[0] is h0, hs[t] the
    state after input t) and every softmax output: the backward pass needs them all."""
    hs, probs = [h0], []
    for x in xs:
        h = np.tanh(x @ p["U"].T + hs[-1] @ p["W"].T + p["b"])
        y = h @ p["V"].T + p["c"]
        e = np.exp(y - y.max(axis=1, keepdims=True))  # softmax, shifted: no overflow
        hs.append(h)
        probs.append(e / e.sum(axis=1, keepdims=True))
    return {"xs": xs, "hs": hs, "probs": probs}


def loss(cache: dict, targets: np.ndarray) -> float:
    """Mean cross-entropy over every step and sequence; targets: (T, B) character indices."""
    T, B = targets.shape
    return float(-np.mean([np.log(cache["probs"][t][np.arange(B), targets[t]])
                           for t in range(T)]))


# -- the backward pass through time, by hand ---------------------------------------------------

def backward(p: dict, cache: dict, targets: np.ndarray) -> dict:
    """dL/dU, dL/dW, dL/dV, dL/db, dL/dc of the mean cross-entropy, from the last step back.

    The same U, W, V act at every step, so each gradient is a sum over the steps. A hidden
    state h_t reaches the loss by two roads: through its own output y_t, and through the next
    state h_{t+1}; `dh_next` carries the second road's gradient back one step at a time.
    """
    xs, hs, probs = cache["xs"], cache["hs"], cache["probs"]
    T, B = targets.shape
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dh_next = np.zeros_like(hs[0])
    for t in reversed(range(T)):
        h, h_prev = hs[t + 1], hs[t]
        # softmax + cross-entropy: dL/dy_t = p_t - onehot(target), over the T*B terms averaged
        dy = probs[t].copy()
        dy[np.arange(B), targets[t]] -= 1
        dy /= T * B
        # y_t = V h_t + c
        g["V"] += dy.T @ h
        g["c"] += dy.sum(axis=0)
        # both roads into h_t: dL/dh_t = V^T dL/dy_t + (the gradient from h_{t+1})
        dh = dy @ p["V"] + dh_next
        # h_t = tanh(a_t), and d tanh(a)/da = 1 - tanh(a)^2 = 1 - h_t^2
        da = (1 - h * h) * dh
        # a_t = U x_t + W h_{t-1} + b
        g["U"] += da.T @ xs[t]
        g["W"] += da.T @ h_prev
        g["b"] += da.sum(axis=0)
        # and a_t depends on h_{t-1} through W: the gradient moves one step back in time
        dh_next = da @ p["W"]
    return g


def gradient_through_time(p: dict, hs: list, dh_last: np.ndarray) -> np.ndarray:
    """The norm of dL/dh_t for a loss L that sees only the LAST hidden state, for t = T, T-1,
    ..., 1 (index k: k steps back from the loss). Each step back multiplies by the tanh slope
    (<= 1) and by W^T: with W's spectral radius below 1 the product shrinks geometrically."""
    norms, dh = [], dh_last
    for t in range(len(hs) - 1, 0, -1):
        norms.append(np.linalg.norm(dh))
        dh = ((1 - hs[t] ** 2) * dh) @ p["W"]  # the same line as in `backward`
    return np.array(norms)


def clip_(g: dict, max_norm: float) -> float:
    """Scale the whole gradient down to `max_norm` if it is longer (the exploding-gradient
    guard); returns the norm before clipping."""
    norm = float(np.sqrt(sum(np.sum(v * v) for v in g.values())))
    if max_norm > 0 and norm > max_norm:
        for v in g.values():
            v *= max_norm / norm
    return norm


# -- the same gradients from torch's autograd --------------------------------------------------

def autograd_gradients(p: dict, xs: np.ndarray, targets: np.ndarray,
                       h0: np.ndarray) -> tuple[dict, list]:
    """The loss's gradient with respect to U, W, V, b, c (float64, autograd), and dL_T/dh_t of
    the last step's loss for every hidden state (as `gradient_through_time` computes it)."""
    import torch
    import torch.nn.functional as F

    pt = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.items()}
    h = torch.tensor(h0, dtype=torch.float64)
    hs, logits = [], []
    for x in torch.tensor(xs, dtype=torch.float64):
        h = torch.tanh(x @ pt["U"].T + h @ pt["W"].T + pt["b"])
        hs.append(h)
        logits.append(h @ pt["V"].T + pt["c"])
    y = torch.tensor(targets)
    total = F.cross_entropy(torch.cat(logits), y.reshape(-1))  # the mean over T*B terms
    grads = torch.autograd.grad(total, list(pt.values()), retain_graph=True)
    last = F.cross_entropy(logits[-1], y[-1], reduction="sum")
    dh = torch.autograd.grad(last, hs)
    return ({k: v.numpy() for k, v in zip(pt, grads)},
            [float(d.norm()) for d in reversed(dh)])


# -- the data ----------------------------------------------------------------------------------

class Text:
    """The repeated string as character indices, and windows cut from it."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.chars)}
        self.ids = np.array([self.index[ch] for ch in text])

    @property
    def vocab(self) -> int:
        return len(self.chars)

    def window(self, start: int, length: int) -> np.ndarray:
        """`length + 1` characters from `start` of the endlessly repeated string."""
        return self.ids[np.arange(start, start + length + 1) % len(self.ids)]

    def batch(self, starts, length: int) -> tuple[np.ndarray, np.ndarray]:
        """One-hot inputs (T, B, vocab) and next-character targets (T, B)."""
        w = np.stack([self.window(s, length) for s in starts], axis=1)  # (T + 1, B)
        return np.eye(self.vocab)[w[:-1]], w[1:]

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def loss_floor(self, length: int) -> float:
        """The lowest mean loss over windows of `length` from every start: each window's first
        prediction sees one character only (the state starts at zero), and in "hello world "
        an 'l' is followed by 'l', 'o' or 'd'. The best guess is the frequency of each next
        character after that one; later positions can be certain."""
        pairs = list(zip(self.ids, np.roll(self.ids, -1)))
        count = {pair: pairs.count(pair) for pair in pairs}
        after = {c: sum(1 for a, _ in pairs if a == c) for c in set(self.ids)}
        return float(-np.mean([np.log(count[a, b] / after[a]) for a, b in pairs]) / length)


def generate(p: dict, text: Text, first: str, n: int) -> str:
    """Feed `first`, then the most likely next character, n times over."""
    h, out = np.zeros((1, p["W"].shape[0])), [text.index[first]]
    for _ in range(n):
        cache = forward(p, np.eye(text.vocab)[[[out[-1]]]], h)
        h = cache["hs"][-1]
        out.append(int(cache["probs"][-1].argmax()))
    return text.decode(out)


def vanishing(p: dict, text: Text, length: int) -> np.ndarray:
    """Norms of dL_T/dh_t on one sequence of `length` characters, for the last step's loss."""
    xs, targets = text.batch([0], length)
    cache = forward(p, xs, np.zeros((1, p["W"].shape[0])))
    dy = cache["probs"][-1].copy()
    dy[0, targets[-1, 0]] -= 1  # dL_T/dy_T
    return gradient_through_time(p, cache["hs"], dy @ p["V"])


def gradient_check(p: dict, text: Text, rng: np.random.Generator, cfg: Config) -> dict:
    """max |hand - autograd| of each parameter's gradient on a fresh batch (from h_0 = 0)."""
    xs, targets = text.batch(rng.integers(0, len(text.ids), cfg.batch_size), cfg.seq_len)
    h0 = np.zeros((cfg.batch_size, cfg.hidden))
    hand = backward(p, forward(p, xs, h0), targets)
    auto, _ = autograd_gradients(p, xs, targets, h0)
    return {k: float(np.max(np.abs(hand[k] - auto[k]))) for k in p}


class RNNScratch(Lab):
    """A vanilla RNN (U, W, V, tanh) trained by hand-written BPTT; the gradient vanishes."""

    lesson = "rnn"
    tags = ("supervised", "rnn", "basics", "backprop")
    explains = "none"  # numpy matrices, not a torch model: nothing for LIME to call
    headline = "final_loss"
    Config = Config

    def run(self, cfg: Config, run) -> dict:
        text = Text(cfg.text)
        rng = np.random.default_rng(cfg.seed)
        p = init_params(text.vocab, cfg.hidden, cfg.init_radius, rng)

        # 1. the hand gradients against autograd, at the initial weights
        check_init = gradient_check(p, text, rng, cfg)
        # and the gradient through time before training, for the same random W at several
        # scales: the default small one, and larger ones for comparison
        start_norms = {r: vanishing(init_params(text.vocab, cfg.hidden, r,
                                                np.random.default_rng(cfg.seed)),
                                    text, cfg.long_len)
                       for r in sorted({cfg.init_radius, 1.0, 1.5, 3.0})}

        # 2. training: forward, backward by hand, clip, step
        losses = []
        for step in run.bar(range(1, cfg.steps + 1), desc="rnn-scratch"):
            xs, targets = text.batch(rng.integers(0, len(text.ids), cfg.batch_size),
                                     cfg.seq_len)
            cache = forward(p, xs, np.zeros((cfg.batch_size, cfg.hidden)))
            losses.append(loss(cache, targets))
            g = backward(p, cache, targets)
            norm = clip_(g, cfg.clip)
            for k in p:
                p[k] -= cfg.lr * g[k]
            if step == 1 or step % cfg.log_every == 0 or step == cfg.steps:
                run.log({"loss": losses[-1], "grad_norm": norm,
                         "clipped": float(cfg.clip > 0 and norm > cfg.clip)},
                        step=step, axis="step")

        # 3. what it learned, and the gradient through time after training
        xs, targets = text.batch(np.arange(len(text.ids)), cfg.seq_len)  # every start
        cache = forward(p, xs, np.zeros((len(text.ids), cfg.hidden)))
        final = loss(cache, targets)
        acc = float(np.mean(np.argmax(np.stack(cache["probs"]), -1) == targets))
        trained = vanishing(p, text, cfg.long_len)
        sample = generate(p, text, cfg.text[0], 2 * len(cfg.text))
        default = start_norms[cfg.init_radius]
        back = min(30, len(default) - 1)

        check = {k: (v, gradient_check(p, text, rng, cfg)[k]) for k, v in check_init.items()}
        run.table("gradient_check", ["parameter", "shape", "max |hand - autograd| at init",
                                     "after training"],
                  [[k, "x".join(map(str, p[k].shape)), *v] for k, v in check.items()])
        floor = text.loss_floor(cfg.seq_len)
        run.figure("loss", loss_figure(np.array(losses), text.vocab, floor, cfg))
        run.figure("vanishing_gradient", vanishing_figure(start_norms, trained, cfg))
        (run.dir / "rnn.json").write_text(json.dumps({
            "vocabulary": text.chars,
            "gradient_check": {k: {"at_init": a, "after_training": b}
                               for k, (a, b) in check.items()},
            "grad_norm_vs_steps_back": {f"init radius {r:g}": v.tolist()
                                        for r, v in start_norms.items()}
            | {"trained": trained.tolist()},
            "generated": sample, "final_loss": final, "next_char_acc": acc}, indent=1))
        return {"final_loss": final, "initial_loss": losses[0], "loss_floor": floor,
                "next_char_acc": acc,
                "max_diff_vs_autograd": max(max(v) for v in check.values()),
                f"grad_{back}_back_ratio": float(default[back] / default[0]),
                f"grad_{back}_back_trained": float(trained[back] / trained[0]),
                "spectral_radius_W": float(np.max(np.abs(np.linalg.eigvals(p["W"]))))}


def loss_figure(losses: np.ndarray, vocab: int, floor: float, cfg: Config):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.8)
    ax.axhline(np.log(vocab), color="gray", ls="--", lw=0.8,
               label=f"guessing: ln {vocab} = {np.log(vocab):.2f}")
    if floor > 0:
        ax.axhline(floor, color="gray", ls=":", lw=0.8,
                   label=f"the best possible: {floor:.4f} (first characters are ambiguous)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per character (log scale)")
    ax.set_title(f"next character of {cfg.text!r}, BPTT over {cfg.seq_len} steps", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def vanishing_figure(start: dict, trained: np.ndarray, cfg: Config):
    """||dL_T/dh_t|| relative to ||dL_T/dh_T||, against how many steps back t is."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    k = np.arange(len(trained))
    for r, norms in start.items():
        ax.semilogy(k, norms / norms[0], label=f"at init, W radius {r:g}"
                    + (" (default)" if r == cfg.init_radius else ""))
    ax.semilogy(k, trained / trained[0], "k--", label="after training")
    ax.set_xlabel("steps back from the loss (T - t)")
    ax.set_ylabel("||dL_T/dh_t|| / ||dL_T/dh_T|| (log scale)")
    ax.set_title("the gradient through time of a tanh RNN", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
