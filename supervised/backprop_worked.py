"""Backpropagation by hand on the classic 2-2-2 sigmoid network, checked against autograd.

The network (the worked example of Matt Mazur's "A Step by Step Backpropagation Example"):
two inputs, two sigmoid hidden neurons h1, h2, two sigmoid outputs o1, o2, every layer fully
connected, one bias per layer.

    net_h1 = w1*i1 + w2*i2 + b1            out_h1 = sigmoid(net_h1)
    net_h2 = w3*i1 + w4*i2 + b1            out_h2 = sigmoid(net_h2)
    net_o1 = w5*out_h1 + w6*out_h2 + b2    out_o1 = sigmoid(net_o1)
    net_o2 = w7*out_h1 + w8*out_h2 + b2    out_o2 = sigmoid(net_o2)
    E = 1/2 (t1 - out_o1)^2 + 1/2 (t2 - out_o2)^2

Read it top to bottom: the forward pass, the error, every partial derivative of the backward
pass written out with the chain rule, the same derivatives from torch's autograd, one gradient
step, then 10,000 of them. Plain Python floats on purpose: each line is one formula.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from labs import Lab, LabConfig, option, plots

I1, I2 = 0.05, 0.10  # inputs
T1, T2 = 0.01, 0.99  # targets
B1, B2 = 0.35, 0.60  # biases of the hidden and the output layer (kept fixed)
WEIGHTS = {"w1": 0.15, "w2": 0.20, "w3": 0.25, "w4": 0.30,  # input -> hidden
           "w5": 0.40, "w6": 0.45, "w7": 0.50, "w8": 0.55}  # hidden -> output


@dataclass
class Config(LabConfig):
    lr: float = option(0.5, "learning rate of the gradient steps", gt=0)
    steps: int = option(10_000, "gradient steps of the training that follows the worked step",
                        min=1)
    log_every: int = option(100, "log the error every this many steps", min=1)


# -- 1. the forward pass -----------------------------------------------------------------------

def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def forward(w: dict[str, float]) -> dict[str, float]:
    """Every intermediate value of one forward pass, by name, and the total error E."""
    f = {}
    f["net_h1"] = w["w1"] * I1 + w["w2"] * I2 + B1
    f["net_h2"] = w["w3"] * I1 + w["w4"] * I2 + B1
    f["out_h1"] = sigmoid(f["net_h1"])
    f["out_h2"] = sigmoid(f["net_h2"])
    f["net_o1"] = w["w5"] * f["out_h1"] + w["w6"] * f["out_h2"] + B2
    f["net_o2"] = w["w7"] * f["out_h1"] + w["w8"] * f["out_h2"] + B2
    f["out_o1"] = sigmoid(f["net_o1"])
    f["out_o2"] = sigmoid(f["net_o2"])
    f["E_o1"] = 0.5 * (T1 - f["out_o1"]) ** 2
    f["E_o2"] = 0.5 * (T2 - f["out_o2"]) ** 2
    f["E"] = f["E_o1"] + f["E_o2"]
    return f


# -- 2. the backward pass, by hand ---------------------------------------------------------------

def backward(w: dict[str, float], f: dict[str, float]) -> dict[str, tuple[str, float]]:
    """Every partial derivative of E, in the order the chain rule meets them.

    Returns {name: (formula, value)}; the eight `dE/dw*` are the gradient.
    Two facts carry the whole computation:
      dE/d out_o = -(t - out_o)                     (from E = 1/2 (t - out)^2)
      d sigmoid(z)/dz = sigmoid(z) (1 - sigmoid(z)) = out (1 - out)
    """
    d: dict[str, tuple[str, float]] = {}
    o1, o2, h1, h2 = f["out_o1"], f["out_o2"], f["out_h1"], f["out_h2"]

    # Output layer. w5 reaches E through net_o1 and out_o1 only:
    #   dE/dw5 = dE/dout_o1 * dout_o1/dnet_o1 * dnet_o1/dw5
    d["dE/dout_o1"] = ("-(t1 - out_o1)", -(T1 - o1))
    d["dout_o1/dnet_o1"] = ("out_o1 (1 - out_o1)", o1 * (1 - o1))
    d["dE/dout_o2"] = ("-(t2 - out_o2)", -(T2 - o2))
    d["dout_o2/dnet_o2"] = ("out_o2 (1 - out_o2)", o2 * (1 - o2))
    # the "delta" of each output neuron: dE/dnet_o = dE/dout_o * dout_o/dnet_o
    delta_o1 = d["dE/dout_o1"][1] * d["dout_o1/dnet_o1"][1]
    delta_o2 = d["dE/dout_o2"][1] * d["dout_o2/dnet_o2"][1]
    d["dE/dnet_o1"] = ("dE/dout_o1 * dout_o1/dnet_o1", delta_o1)
    d["dE/dnet_o2"] = ("dE/dout_o2 * dout_o2/dnet_o2", delta_o2)
    # net_o1 = w5 out_h1 + w6 out_h2 + b2, so dnet_o1/dw5 = out_h1 and dnet_o1/dw6 = out_h2
    d["dnet_o1/dw5"] = ("out_h1", h1)
    d["dE/dw5"] = ("dE/dnet_o1 * out_h1", delta_o1 * h1)
    d["dE/dw6"] = ("dE/dnet_o1 * out_h2", delta_o1 * h2)
    d["dE/dw7"] = ("dE/dnet_o2 * out_h1", delta_o2 * h1)
    d["dE/dw8"] = ("dE/dnet_o2 * out_h2", delta_o2 * h2)

    # Hidden layer. out_h1 feeds BOTH outputs, so its derivative is a sum of two paths:
    #   dE/dout_h1 = dE_o1/dout_h1 + dE_o2/dout_h1
    #              = dE/dnet_o1 * dnet_o1/dout_h1 + dE/dnet_o2 * dnet_o2/dout_h1
    #              = delta_o1 * w5 + delta_o2 * w7          (the OLD w5, w7: before any update)
    d["dE_o1/dout_h1"] = ("dE/dnet_o1 * w5", delta_o1 * w["w5"])
    d["dE_o2/dout_h1"] = ("dE/dnet_o2 * w7", delta_o2 * w["w7"])
    d["dE/dout_h1"] = ("dE_o1/dout_h1 + dE_o2/dout_h1", delta_o1 * w["w5"] + delta_o2 * w["w7"])
    d["dE/dout_h2"] = ("dE/dnet_o1 * w6 + dE/dnet_o2 * w8",
                       delta_o1 * w["w6"] + delta_o2 * w["w8"])
    d["dout_h1/dnet_h1"] = ("out_h1 (1 - out_h1)", h1 * (1 - h1))
    d["dout_h2/dnet_h2"] = ("out_h2 (1 - out_h2)", h2 * (1 - h2))
    delta_h1 = d["dE/dout_h1"][1] * d["dout_h1/dnet_h1"][1]
    delta_h2 = d["dE/dout_h2"][1] * d["dout_h2/dnet_h2"][1]
    d["dE/dnet_h1"] = ("dE/dout_h1 * dout_h1/dnet_h1", delta_h1)
    d["dE/dnet_h2"] = ("dE/dout_h2 * dout_h2/dnet_h2", delta_h2)
    # net_h1 = w1 i1 + w2 i2 + b1, so dnet_h1/dw1 = i1
    d["dnet_h1/dw1"] = ("i1", I1)
    d["dE/dw1"] = ("dE/dnet_h1 * i1", delta_h1 * I1)
    d["dE/dw2"] = ("dE/dnet_h1 * i2", delta_h1 * I2)
    d["dE/dw3"] = ("dE/dnet_h2 * i1", delta_h2 * I1)
    d["dE/dw4"] = ("dE/dnet_h2 * i2", delta_h2 * I2)
    return d


def gradient(partials: dict[str, tuple[str, float]]) -> dict[str, float]:
    """The eight dE/dw from the table of partials."""
    return {k: partials[f"dE/d{k}"][1] for k in WEIGHTS}


def step(w: dict[str, float], grad: dict[str, float], lr: float) -> dict[str, float]:
    """One gradient-descent step on all eight weights at once (w <- w - lr * dE/dw); the
    hidden layer's gradient was computed with the old w5..w8, as backpropagation requires."""
    return {k: w[k] - lr * grad[k] for k in w}


# -- 3. the same partial derivatives from torch's autograd ---------------------------------------

def autograd_partials(w: dict[str, float]) -> dict[str, float]:
    """Each partial of `backward`, asked of autograd (float64): torch.autograd.grad(y, x)
    is dy/dx through the graph, whether x is a weight or an intermediate value."""
    import torch

    wt = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in w.items()}
    net_h1 = wt["w1"] * I1 + wt["w2"] * I2 + B1
    net_h2 = wt["w3"] * I1 + wt["w4"] * I2 + B1
    out_h1, out_h2 = torch.sigmoid(net_h1), torch.sigmoid(net_h2)
    net_o1 = wt["w5"] * out_h1 + wt["w6"] * out_h2 + B2
    net_o2 = wt["w7"] * out_h1 + wt["w8"] * out_h2 + B2
    out_o1, out_o2 = torch.sigmoid(net_o1), torch.sigmoid(net_o2)
    e_o1, e_o2 = 0.5 * (T1 - out_o1) ** 2, 0.5 * (T2 - out_o2) ** 2
    e = e_o1 + e_o2

    def d(y, x) -> float:
        return torch.autograd.grad(y, x, retain_graph=True)[0].item()

    # dE_o1/dout_h1 is the path through o1 only: the derivative of E_o1, not of E
    pairs = {"dE/dout_o1": (e, out_o1), "dout_o1/dnet_o1": (out_o1, net_o1),
             "dE/dout_o2": (e, out_o2), "dout_o2/dnet_o2": (out_o2, net_o2),
             "dE/dnet_o1": (e, net_o1), "dE/dnet_o2": (e, net_o2),
             "dnet_o1/dw5": (net_o1, wt["w5"]),
             "dE_o1/dout_h1": (e_o1, out_h1), "dE_o2/dout_h1": (e_o2, out_h1),
             "dE/dout_h1": (e, out_h1), "dE/dout_h2": (e, out_h2),
             "dout_h1/dnet_h1": (out_h1, net_h1), "dout_h2/dnet_h2": (out_h2, net_h2),
             "dE/dnet_h1": (e, net_h1), "dE/dnet_h2": (e, net_h2),
             "dnet_h1/dw1": (net_h1, wt["w1"])}
    pairs.update({f"dE/d{k}": (e, wt[k]) for k in WEIGHTS})
    return {name: d(y, x) for name, (y, x) in pairs.items()}


# -- 4. many steps -------------------------------------------------------------------------------

def train(w: dict[str, float], lr: float, steps: int) -> tuple[dict[str, float], np.ndarray]:
    """`steps` rounds of forward, backward, update. errors[k-1] is the error step k's forward
    pass saw, before its own update: errors[0] is E of the initial weights (0.298371109), and
    errors[9999] is the 0.0000351085 the worked example quotes "after 10,000 steps"."""
    errors = np.empty((steps, 3))  # E, out_o1, out_o2
    for k in range(steps):
        f = forward(w)
        errors[k] = f["E"], f["out_o1"], f["out_o2"]
        w = step(w, gradient(backward(w, f)), lr)
    return w, errors


class BackpropWorked(Lab):
    """The classic 2-2-2 sigmoid network: one backward pass by hand, checked by autograd."""

    lesson = "backprop"
    tags = ("supervised", "basics", "backprop")
    explains = "none"  # a worked example: there is no trained model worth explaining
    headline = "final_error"
    Config = Config

    def run(self, cfg: Config, run) -> dict:
        w0 = dict(WEIGHTS)
        f = forward(w0)
        partials = backward(w0, f)
        auto = autograd_partials(w0)
        rows = [[name, formula, value, auto[name], abs(value - auto[name])]
                for name, (formula, value) in partials.items()]
        max_diff = max(r[-1] for r in rows)
        run.table("partials", ["partial", "chain rule", "by hand", "autograd", "abs diff"], rows)

        grad = gradient(partials)
        w1 = step(w0, grad, cfg.lr)
        run.table("update", ["weight", "before", "dE/dw", f"after (lr {cfg.lr:g})"],
                  [[k, w0[k], grad[k], w1[k]] for k in WEIGHTS])
        after_one = forward(w1)["E"]

        w_end, errors = train(w0, cfg.lr, cfg.steps)
        for k in range(cfg.steps):
            if k == 0 or (k + 1) % cfg.log_every == 0 or k + 1 == cfg.steps:
                run.log({"error": errors[k, 0], "out_o1": errors[k, 1],
                         "out_o2": errors[k, 2]}, step=k + 1, axis="step")
        f_end = forward(w_end)

        (run.dir / "backprop.json").write_text(json.dumps({
            "inputs": [I1, I2], "targets": [T1, T2], "biases": [B1, B2], "lr": cfg.lr,
            "forward": f,
            "partials": {r[0]: {"chain_rule": r[1], "by_hand": r[2], "autograd": r[3],
                                "abs_diff": r[4]} for r in rows},
            "weights_before": w0, "weights_after_one_step": w1,
            "error_after_one_step": after_one,
            "steps": cfg.steps, "error_at_last_step": float(errors[-1, 0]),
            "error_after_last_update": f_end["E"],
            "outputs_after_last_update": [f_end["out_o1"], f_end["out_o2"]],
            "weights_after_training": w_end}, indent=1))

        g = {k: v * (1e4 if k in ("w1", "w2", "w3", "w4") else 1e2) for k, v in grad.items()}
        run.figure("network", plots.matrices(
            {"w1..w4 (to h1, h2)": [[w0["w1"], w0["w2"]], [w0["w3"], w0["w4"]]],
             "dE/dw1..w4 (x 1e-4)": [[g["w1"], g["w2"]], [g["w3"], g["w4"]]],
             "w1..w4 after": [[w1["w1"], w1["w2"]], [w1["w3"], w1["w4"]]],
             "w5..w8 (to o1, o2)": [[w0["w5"], w0["w6"]], [w0["w7"], w0["w8"]]],
             "dE/dw5..w8 (x 1e-2)": [[g["w5"], g["w6"]], [g["w7"], g["w8"]]],
             "w5..w8 after": [[w1["w5"], w1["w6"]], [w1["w7"], w1["w8"]]]},
            title=f"one backward pass by hand, one step of lr {cfg.lr:g} (a row: the weights "
                  f"into one neuron)", fmt=".4g"))
        run.figure("error", error_figure(errors, cfg))
        return {"final_error": float(errors[-1, 0]),
                "error": f["E"], "out_o1": f["out_o1"], "out_o2": f["out_o2"],
                "dE_dw5": grad["w5"], "dE_dw1": grad["w1"],
                **{f"{k}_after_one_step": v for k, v in w1.items()},
                "error_after_one_step": after_one,
                "max_diff_vs_autograd": max_diff,
                "final_out_o1": f_end["out_o1"], "final_out_o2": f_end["out_o2"]}


def error_figure(errors: np.ndarray, cfg: Config):
    """The total error on a log scale, and the two outputs closing in on their targets."""
    from matplotlib.figure import Figure

    steps = np.arange(1, len(errors) + 1)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    ax.semilogy(steps, errors[:, 0])
    ax.set_xlabel("step")
    ax.set_ylabel("total error E (log scale)")
    ax.set_title(f"E: {errors[0, 0]:.9f} at step 1, {errors[-1, 0]:.10f} at step {len(errors)}",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax = fig.add_subplot(1, 2, 2)
    for col, (name, target) in enumerate((("out_o1", T1), ("out_o2", T2)), start=1):
        line, = ax.plot(steps, errors[:, col], label=name)
        ax.axhline(target, color=line.get_color(), ls="--", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("output (dashed: target)")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.suptitle(f"gradient descent, lr {cfg.lr:g}, biases fixed")
    return fig
