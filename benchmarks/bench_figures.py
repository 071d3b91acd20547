"""Per-figure render time: the old save path against the Agg canvas used now.

The figures the built-in labs make (training curves, confusion matrix, misclassified grid,
XOR decision surface, the perceptron's decision lines) and the explanation figures (tabular,
image). "before" is how they were saved until issue 14: `Run.figure` called
`fig.savefig(dpi=110, bbox_inches="tight")` (and imported pyplot to close the figure), explain
`fig.savefig(dpi=100)`. "now" is `labs.context.save_png` / `explain.runner._save_png` (Agg
canvas directly, dpi 100, cropping only figures with no layout). Figure construction
(`make`) is timed separately. One process, interleaved, median of `--repeat`.

    python benchmarks/bench_figures.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402


def makers() -> dict:
    import numpy as np
    import torch

    import explain
    from explain.base import get_explainer
    from labs import datasets, models, plots
    from labs.trainer import History, Trainer
    from supervised import perceptron, xor

    hist = History([{"epoch": e, "train_loss": 1 / e, "train_acc": 1 - 1 / e}
                    for e in range(1, 61)])
    digits = datasets.digits(seed=0)
    true = digits.test.y.numpy()
    pred = (true + (np.arange(len(true)) % 29 == 0)) % 10
    imgs = [digits.display(digits.test.x[i].numpy()) for i in range(32)]
    gate = datasets.logic_gate("XOR")
    torch.manual_seed(0)
    tr = Trainer(models.mlp(2, [4], 2, "tanh"), None)
    cfg = perceptron.Config()
    lab = perceptron.PerceptronGates()
    pdata = lab.data(cfg)
    nets = lab.model(cfg, pdata)
    for g, net in nets.items():
        for _ in range(5):
            net.learn(pdata.train.x, pdata.extras["targets"][g], 1.0)

    def explanation(subject):
        cls = get_explainer(subject.kind)
        ex = cls()
        ex.prepare(subject)
        e = ex.explain_one(subject, 0, 0, 200)
        return lambda: ex.figure(subject, e)

    tab = lab.subjects(cfg, nets, pdata)["AND"]
    mlp = models.mlp(64, [64], 10).eval()
    img = explain.Subject("image", explain.torch_predict(mlp), digits.test.x[:1].numpy(),
                          labels=true[:1], image_shape=(8, 8))
    return {
        "curves (60 epochs)": ("run", lambda: plots.curves(hist)),
        "confusion 10x10": ("run", lambda: plots.confusion(true, pred)),
        "misclassified grid (32)": ("run", lambda: plots.image_grid(imgs, [""] * 32)),
        "xor decision surface": ("run", lambda: xor.decision_surface(tr, gate)),
        "perceptron decision lines (5 gates)": ("run", lambda: perceptron.decision_lines(
            nets, pdata, cfg)),
        "explanation, tabular (2 features)": ("explain", explanation(tab)),
        "explanation, image (8x8 digit)": ("explain", explanation(img)),
    }


def old_save(kind: str, fig, path) -> None:
    if kind == "run":
        fig.savefig(path, dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt  # what the old Run.figure did to close a figure

        plt.close(fig)
    else:
        fig.savefig(path, dpi=100)


def new_save(kind: str, fig, path) -> None:
    from explain.runner import _save_png
    from labs.context import save_png

    (save_png if kind == "run" else _save_png)(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-write", action="store_true", help="print only, keep the JSON as is")
    args = p.parse_args()
    # import cost of the first figure in a process, before anything else touches matplotlib
    t = time.perf_counter()
    import matplotlib.figure  # noqa: F401
    from matplotlib.backends import backend_agg  # noqa: F401
    import_ms = 1e3 * (time.perf_counter() - t)
    figs = makers()
    times = {k: {"make": [], "before": [], "now": []} for k in figs}
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.repeat + 1):  # round 0 warms fonts and caches
            for name, (kind, make) in figs.items():
                for how, save in (("before", old_save), ("now", new_save))[::1 - 2 * (r % 2)]:
                    t = time.perf_counter()
                    fig = make()
                    t1 = time.perf_counter()
                    save(kind, fig, Path(d) / "f.png")
                    t2 = time.perf_counter()
                    if r:
                        times[name]["make"].append(1e3 * (t1 - t))
                        times[name][how].append(1e3 * (t2 - t1))
    result = {"machine": _common.machine(), "repeat": args.repeat,
              "import_matplotlib_ms": round(import_ms, 1), "figures": {
                  k: {part: _common.stats(v) for part, v in parts.items()}
                  for k, parts in times.items()}}
    result["total_save_ms"] = {
        how: round(sum(statistics.median(p[how]) for p in times.values()), 1)
        for how in ("before", "now")}
    import render

    print(render.figures_table(result))
    if not args.no_write:
        print(f"\nwrote {_common.write('figures', result)}")


if __name__ == "__main__":
    main()
