"""Rosenblatt's perceptron learns the logic gates it can separate, and fails on XOR; before it,
the McCulloch-Pitts unit computes OR and AND with fixed weights, a threshold and a veto."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labs import Lab, LabConfig, datasets, default_subject, option


@dataclass
class Config(LabConfig):
    gates: list[str] = option(["AND", "OR", "NAND", "NOR", "XOR"], "gates to learn",
                             choices=tuple(datasets.GATES))
    epochs: int = option(20, "at most this many passes over the truth table", min=1)
    lr: float = option(1.0, "learning rate of the perceptron rule (from zero weights it only "
                            "scales them)", gt=0)
    mcp_inputs: int = option(3, "excitatory binary inputs of the McCulloch-Pitts unit (it "
                                "also has one inhibitory input)", min=1, max=8)
    theta_and: float = option(3.0, "McCulloch-Pitts threshold that makes AND (= mcp_inputs; "
                                   "in between: 'at least theta of them')")
    theta_or: float = option(1.0, "McCulloch-Pitts threshold that makes OR")
    explain_samples: int = option(4, "truth-table rows to explain (all four: (1, 1) too)",
                                  min=1)


class Perceptron(nn.Module):
    """Weighted sum plus bias, then a step: y = 1 if w.x + b > 0 else 0."""

    def __init__(self, n_in: int):
        super().__init__()
        # trained by the perceptron rule, not by gradients
        self.weight = nn.Parameter(torch.zeros(n_in), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.weight + self.bias > 0).float()

    def learn(self, x: torch.Tensor, t: torch.Tensor, lr: float) -> int:
        """One pass of the perceptron learning rule; returns the number of mistakes."""
        mistakes = 0
        for xi, ti in zip(x, t.float()):
            err = ti - self(xi)
            if err != 0:
                self.weight += lr * err * xi
                self.bias += lr * err
                mistakes += 1
        return mistakes


def mcculloch_pitts(x: torch.Tensor, theta: float,
                    inhibitory: torch.Tensor | None = None) -> torch.Tensor:
    """The McCulloch-Pitts unit (1943): binary excitatory inputs with fixed unit weights; it
    fires when their sum reaches theta, unless an inhibitory input is on (an absolute veto)."""
    fires = x.sum(-1) >= theta
    if inhibitory is not None:
        fires = fires & (inhibitory.reshape(len(x), -1).sum(-1) == 0)
    return fires.long()


def mcp_truth_table(n: int, theta_or: float, theta_and: float
                    ) -> tuple[list[str], list[list[int]], dict[str, float]]:
    """Every row of n excitatory inputs x the inhibitory input: the unit with theta_or and
    theta_and against OR and AND of the inputs (vetoed when inhibited). (columns, rows, acc)."""
    grid = torch.tensor([[(i >> (n - 1 - j)) & 1 for j in range(n)] for i in range(2 ** n)])
    x = grid.repeat(2, 1).float()
    inhibit = torch.repeat_interleave(torch.tensor([0, 1]), 2 ** n)
    out = {"OR": mcculloch_pitts(x, theta_or, inhibit),
           "AND": mcculloch_pitts(x, theta_and, inhibit)}
    truth = {"OR": (x.sum(-1) >= 1) & (inhibit == 0), "AND": (x.sum(-1) == n) & (inhibit == 0)}
    columns = [*(f"x{j + 1}" for j in range(n)), "inhibit", f"OR (theta={theta_or:g})",
               f"AND (theta={theta_and:g})"]
    rows = [[*map(int, x[i].tolist()), int(inhibit[i]), int(out["OR"][i]), int(out["AND"][i])]
            for i in range(len(x))]
    acc = {g: (out[g] == truth[g].long()).float().mean().item() for g in out}
    return columns, rows, acc


class PerceptronGates(Lab):
    """Perceptron learning rule on AND, OR, NAND, NOR (100%) and XOR (impossible)."""

    lesson = "perceptron"
    tags = ("supervised", "perceptron", "basics")
    explains = "tabular"
    headline = "gates_learned"
    Config = Config

    def data(self, cfg: Config):
        data = datasets.logic_gate("AND")
        data.extras["targets"] = {g: datasets.logic_gate(g).train.y for g in cfg.gates}
        return data

    def model(self, cfg: Config, data) -> nn.Module:
        return nn.ModuleDict({g: Perceptron(2) for g in cfg.gates})

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        nets = self.model(cfg, data)
        x = data.train.x
        metrics: dict[str, float] = {}
        for gate in run.bar(cfg.gates, desc="gates"):
            t = data.extras["targets"][gate]
            net = nets[gate]
            for epoch in range(1, cfg.epochs + 1):
                mistakes = net.learn(x, t, cfg.lr)
                run.log({f"{gate}/mistakes": mistakes}, step=epoch, axis=f"{gate}/epoch")
                if mistakes == 0:
                    break
            acc = (net(x).long() == t).float().mean().item()
            metrics[f"acc_{gate}"] = acc
            metrics[f"epochs_{gate}"] = epoch
        columns, rows, mcp_acc = mcp_truth_table(cfg.mcp_inputs, cfg.theta_or, cfg.theta_and)
        run.table("mcculloch_pitts", columns, rows)
        print(f"McCulloch-Pitts unit, {cfg.mcp_inputs} excitatory inputs + 1 inhibitory:")
        print("  " + "  ".join(columns))
        for row in rows:
            print("  " + "  ".join(str(v).center(len(c)) for v, c in zip(row, columns)))
        for gate in ("AND", "OR"):
            metrics[f"mcp_acc_{gate}"] = mcp_acc[gate]
        # the veto: with the inhibitory input on, no row fires at either threshold
        metrics["mcp_vetoed_fires"] = float(sum(r[-1] + r[-2] for r in rows if r[-3] == 1))
        learnable = [g for g in cfg.gates if g not in ("XOR", "XNOR")]
        metrics = {"gates_learned": float(sum(metrics[f"acc_{g}"] == 1.0 for g in learnable)),
                   **metrics}
        run.save_model(nets)
        run.data = data
        run.figure("decision_lines", decision_lines(nets, data, cfg))
        return metrics

    def subjects(self, cfg: Config, model: nn.Module, data) -> dict:
        """One tabular explanation per separable gate, with the perceptron's own weights as
        the ground truth LIME's weights should rank alike."""
        out = {}
        for gate, net in model.items():
            if gate in ("XOR", "XNOR"):
                continue  # no linear model fits: there is no ground truth to compare with
            s = default_subject("tabular", net, data, cfg)
            s.predict = _step_proba(net)
            s.labels = data.extras["targets"][gate].numpy()
            s.true_weights = net.weight.detach().cpu().numpy().copy()
            s.baseline = 0.0  # a gate input that is "off"
            out[gate] = s
        return out


def _step_proba(net: Perceptron):
    """The step output as the probabilities of classes 0 and 1, for LIME."""

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            y = net(torch.as_tensor(x, dtype=torch.float32)).numpy()
        return np.stack([1 - y, y], axis=1)

    return predict


def decision_lines(nets: nn.ModuleDict, data, cfg: Config):
    """Each gate's truth table and the perceptron's line w1*x1 + w2*x2 + b = 0."""
    from matplotlib.figure import Figure

    x = data.train.x.numpy()
    fig = Figure(figsize=(3.2 * len(nets), 3.3))
    xs = np.linspace(-0.5, 1.5, 50)
    for i, (gate, net) in enumerate(nets.items()):
        ax = fig.add_subplot(1, len(nets), i + 1)
        t = data.extras["targets"][gate].numpy()
        # shade where the perceptron fires (w.x + b > 0)
        gx, gy = np.meshgrid(xs, xs)
        fires = net(torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)))
        ax.contourf(gx, gy, fires.numpy().reshape(gx.shape), levels=[-0.5, 0.5, 1.5],
                    colors=["#d6e4ff", "#ffd6d6"], alpha=0.6)
        ax.scatter(x[:, 0], x[:, 1], c=t, cmap="bwr", edgecolors="k", s=90, vmin=0, vmax=1)
        (w1, w2), b = net.weight.numpy(), float(net.bias)
        if abs(w2) > 1e-9:
            ax.plot(xs, -(w1 * xs + b) / w2, "k-")
        elif abs(w1) > 1e-9:
            ax.axvline(-b / w1, color="k")
        acc = (net(data.train.x).long().numpy() == t).mean()
        ax.set_title(f"{gate}: {acc:.0%}" + (" (not separable)" if gate == "XOR" else ""))
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylim(-0.5, 1.5)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    fig.suptitle("red: the perceptron fires (w.x + b > 0); a point on the line does not fire",
                 fontsize=9)
    fig.tight_layout()
    return fig
