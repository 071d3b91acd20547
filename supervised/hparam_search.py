"""Hyperparameter search: a grid and a random search over learning rate x batch size x width,
each trial a full run of another lab (digits-mlp) through the notebook API `labs.run`."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.figure import Figure

from labs import ConfigError, Lab, LabConfig, option


@dataclass
class Config(LabConfig):
    lab: str = option("digits-mlp", "the lab whose runs are the trials; it must take lr, "
                                    "batch_size and hidden")
    search: Literal["both", "grid", "random"] = option("both", "which searches to run")
    trial_epochs: int = option(10, "epochs of each trial (short: a search ranks settings, it "
                                   "does not train the final model)", min=1)
    grid_lr: list[float] = option([1e-3, 1e-2], "learning rates of the grid", gt=0)
    grid_batch_size: list[int] = option([32, 128], "batch sizes of the grid", min=1)
    grid_width: list[int] = option([16, 128], "hidden widths of the grid (one hidden layer)",
                                   min=1)
    random_trials: int = option(6, "trials of the random search", min=0)
    lr_range: list[float] = option([1e-4, 3e-2], "random search: learning rate range, drawn "
                                                 "log-uniformly", gt=0)
    batch_sizes: list[int] = option([16, 32, 64, 128], "random search: batch sizes to draw "
                                                       "from", min=1)
    width_range: list[int] = option([8, 256], "random search: hidden width range, drawn "
                                              "log-uniformly", min=1)

    def validate(self) -> None:
        super().validate()
        for key in ("lr_range", "width_range"):
            lo_hi = getattr(self, key)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise ConfigError(f"{key} must be [low, high] with low <= high, not {lo_hi}")


def trials(cfg: Config) -> list[dict]:
    """Every trial's settings: the grid's, then the random search's (seeded by cfg.seed)."""
    out = []
    if cfg.search in ("both", "grid"):
        out += [{"search": "grid", "lr": lr, "batch_size": b, "width": w}
                for lr in cfg.grid_lr for b in cfg.grid_batch_size for w in cfg.grid_width]
    if cfg.search in ("both", "random"):
        rng = np.random.default_rng(cfg.seed)  # its own generator: trials reseed torch's
        (lr_lo, lr_hi), (w_lo, w_hi) = cfg.lr_range, cfg.width_range
        for _ in range(cfg.random_trials):
            out.append({"search": "random",
                        "lr": float(math.exp(rng.uniform(math.log(lr_lo), math.log(lr_hi)))),
                        "batch_size": int(rng.choice(cfg.batch_sizes)),
                        "width": int(round(math.exp(rng.uniform(math.log(w_lo),
                                                                math.log(w_hi)))))})
    return out


class HparamSearch(Lab):
    """Grid and random search over lr x batch size x width, each trial a digits-mlp run.

    A table of the trials (each linked to its run) and validation accuracy against the
    learning rate."""

    lesson = "hyperparameters"
    tags = ("supervised", "hyperparameters", "search")
    explains = "none"
    headline = "best_val_acc"
    Config = Config

    def run(self, cfg: Config, run) -> dict:
        from labs import run as run_lab  # the notebook API: each trial is a whole run

        plan = trials(cfg)
        if not plan:
            raise ConfigError("no trials: give the grid values or random_trials > 0")
        root = run.dir.parent.parent  # the runs root: trials are ordinary runs of the lab
        rows = []
        for t in run.bar(plan, desc="trials", total=len(plan)):
            start = time.perf_counter()
            # seed fixed across trials: differences come from the settings, not the init
            res = run_lab(cfg.lab, track=False, progress=False, runs_dir=root, parent=run,
                          explain=False, seed=cfg.seed, device=cfg.device,
                          epochs=cfg.trial_epochs, lr=t["lr"], batch_size=t["batch_size"],
                          hidden=[t["width"]])
            row = {**t, "val_acc": last_logged(res.dir, "val_acc"),
                   "test_acc": float(res.metrics.get("test_acc", float("nan"))),
                   "seconds": time.perf_counter() - start,
                   "run": str(res.dir.relative_to(root))}
            rows.append(row)
            run.log({f"trial/{k}": row[k] for k in ("lr", "batch_size", "width", "val_acc")},
                    step=len(rows), axis="trial")
        columns = ["search", "lr", "batch_size", "width", "val_acc", "test_acc", "seconds",
                   "run"]
        run.table("trials", columns, [[r[c] for c in columns] for r in rows])
        (run.dir / "trials.json").write_text(json.dumps(rows, indent=1))
        run.figure("search", search_figure(rows))

        metrics: dict[str, float] = {"trials": float(len(rows))}
        for search in ("grid", "random"):
            mine = [r for r in rows if r["search"] == search]
            if mine:
                best = max(mine, key=lambda r: r["val_acc"])
                metrics[f"{search}_best_val_acc"] = best["val_acc"]
                print(f"best of {len(mine)} {search} trials by validation accuracy: "
                      f"lr={best['lr']:.2g} batch_size={best['batch_size']} "
                      f"width={best['width']}: val {best['val_acc']:.3f}, test "
                      f"{best['test_acc']:.3f} ({best['run']})")
        best = max(rows, key=lambda r: r["val_acc"])
        metrics.update(best_val_acc=best["val_acc"], best_test_acc=best["test_acc"],
                       best_lr=best["lr"], best_batch_size=float(best["batch_size"]),
                       best_width=float(best["width"]),
                       worst_val_acc=min(r["val_acc"] for r in rows))
        return metrics


def last_logged(run_dir: Path, key: str) -> float:
    """The last value of `key` in a run's metrics.jsonl (the trial's final validation score:
    the search chooses on validation data, never on the test split)."""
    value = float("nan")
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if key in row:
            value = float(row[key])
    return value


def search_figure(rows: list[dict]) -> Figure:
    """Validation accuracy against learning rate (log axis) and against width; marker size
    grows with the batch size, grid trials are circles, random ones triangles."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    sizes = sorted({r["batch_size"] for r in rows})
    for i, (key, label) in enumerate((("lr", "learning rate"), ("width", "hidden width"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for search, marker in (("grid", "o"), ("random", "^")):
            mine = [r for r in rows if r["search"] == search]
            if mine:
                sc = ax.scatter([r[key] for r in mine], [r["val_acc"] for r in mine],
                                s=[30 + 25 * sizes.index(r["batch_size"]) for r in mine],
                                c=[np.log2(r["batch_size"]) for r in mine], cmap="viridis",
                                vmin=np.log2(sizes[0]), vmax=np.log2(sizes[-1]) + 1e-9,
                                marker=marker, edgecolors="k", label=f"{search} search")
        ax.set_xscale("log", base=10 if key == "lr" else 2)
        ax.set_xlabel(f"{label} (log scale)")
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right", fontsize=8)
    cbar = fig.colorbar(sc, ax=fig.axes, label="batch size")
    cbar.set_ticks(np.log2(sizes), labels=[str(s) for s in sizes])
    fig.suptitle(f"{len(rows)} trials: validation accuracy by hyperparameter")
    return fig
