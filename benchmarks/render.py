"""Tables from benchmarks/results/*.json, written into README.md and benchmarks/README.md.

Both files hold the generated text between `<!-- bench:start -->` and `<!-- bench:end -->`;
nothing between the markers is typed by hand. Each bench script also prints its own table
with these functions.

    python benchmarks/render.py          # rewrite both READMEs from the JSON present
    python benchmarks/render.py --check  # exit 1 if a README is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, table  # noqa: E402

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _mr(s: dict, fmt: str = "{:.1f}") -> str:
    """median (min-max)"""
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def machine_line(m: dict) -> str:
    v = m.get("versions", {})
    parts = [f"{m['cpu']}", f"{m['cores']} cores", f"{m.get('ram_gib')} GiB RAM",
             f"GPU: {m.get('gpu') or 'none'}", f"python {v.get('python')}",
             f"torch {v.get('torch')}"]
    if m.get("load_1min_at_start") is not None:
        parts.append(f"load {m['load_1min_at_start']:.1f} at start")
    return f"_{' · '.join(parts)} · {m.get('date', '')}_"


def trainer_table(d: dict) -> str:
    s = d["setting"]
    out = [f"{s['model']}, {s['optimizer']}, {s['epochs']} epochs, {s['torch_threads']} torch "
           f"thread(s), {s['rounds']} rounds, {s['process']}; median (range):"]
    for b, rows in d["batches"].items():
        steps = next(iter(rows.values()))["steps_per_epoch"]
        out += ["", f"batch {b} ({steps} steps/epoch):", ""]
        fastest = min(rows["hand"]["raw_ms"])
        out.append(table(
            ["variant", "ms/epoch", "/ hand loop (same round)", "fastest / fastest hand loop",
             "test acc"],
            [[d["labels"][v], _mr(r["ms_per_epoch"]), _mr(r["ratio_to_hand"], "{:.2f}"),
              f"{min(r['raw_ms']) / fastest:.2f}", f"{r['test_acc']:.3f}"]
             for v, r in rows.items()]))
    if d.get("same_process"):
        out += ["", same_process_table(d)]
    if d.get("note"):
        out += ["", d["note"] + "."]
    return "\n".join(out)


def same_process_table(d: dict) -> str:
    sp = d["same_process"]
    out = [f"The same variants alternating in ONE process ({sp['rounds']} rounds after an "
           f"untimed run of each, {sp['torch_threads']} torch thread(s)): no "
           f"process-to-process noise; median (range):"]
    for b, r in sp["batches"].items():
        out += ["", f"batch {b}: the hand loop's fastest run after the fits over its fastest "
                    f"before any: {r['hand_after_fits_over_before']:.2f}", ""]
        out.append(table(
            ["variant", "ms/epoch", "/ hand loop (same round)", "fastest / fastest hand loop"],
            [[d["labels"][v], _mr(x["ms_per_epoch"]), _mr(x["ratio_to_hand"], "{:.2f}"),
              f"{x['fastest_over_fastest_hand']:.2f}"] for v, x in r["variants"].items()]))
    return "\n".join(out)


def labs_table(d: dict) -> str:
    rows = [[f"`{k}`", _mr(v, "{:.2f}")] for k, v in d["commands"].items()]
    checks = "; ".join(f"{k}: {v}" for k, v in d.get("checks", {}).items())
    if d.get("wandb_minus_no_track_s"):
        checks += (f"\n\n`lab run digits-mlp` with W&B offline minus `--no-track`, each "
                   f"round's pair, s: {_mr(d['wandb_minus_no_track_s'], '{:.2f}')}")
    return (f"fresh interpreter per command, {d['repeat']} interleaved repeats, "
            f"seconds, median (range):\n\n" + table(["command", "wall s"], rows)
            + (f"\n\n{checks}" if checks else ""))


def imports_table(d: dict) -> str:
    rows = [[f"`{k}`", _mr({k2: 1e3 * v[k2] for k2 in ("median", "min", "max")}, "{:.0f}")]
            for k, v in d["imports"].items()]
    return (f"`python -c \"import X\"` minus the `python -c pass` floor "
            f"({1e3 * d['floor_s']:.0f} ms), ms, median (range):\n\n"
            + table(["module", "import ms"], rows))


def figures_table(d: dict) -> str:
    rows = [[k, _mr(v["make"], "{:.0f}"), _mr(v["before"], "{:.0f}"), _mr(v["now"], "{:.0f}")]
            for k, v in d["figures"].items()]
    t = d["total_save_ms"]
    return (f"ms per figure, median (range) of {d['repeat']}; `make` builds the figure, "
            f"`before`/`now` render and write the PNG:\n\n"
            + table(["figure", "make", "save before", "save now"], rows)
            + f"\n\nsum of the medians: {t['before']:.0f} ms before, {t['now']:.0f} ms now; "
              f"importing matplotlib.figure + Agg: {d['import_matplotlib_ms']:.0f} ms once.")


def threads_table(d: dict) -> str:
    out = [f"{d['usable_cores']} usable cores, {d['rounds']} rounds, one process per "
           f"measurement, ms per epoch, median (range); \"contended\": one busy Python loop "
           f"runs alongside."]
    for cond, per_w in d["results"].items():
        counts = list(next(iter(per_w.values())))
        rows = [[d["labels"][w], *[_mr(per_n[n]["wall_ms_per_epoch"]) for n in counts],
                 *[_mr(per_n[n]["cpu_ms_per_epoch"]) for n in counts]]
                for w, per_n in per_w.items()]
        out += ["", f"{cond}:", "", table(
            ["workload", *[f"wall, {n} thr" for n in counts],
             *[f"CPU, {n} thr" for n in counts]], rows)]
    return "\n".join(out)


def cli_table(d: dict) -> str:
    rows = [[f"`{k}`", f"{v['median']:.3f}", f"{v['min']:.3f}"] for k, v in d["rows"].items()]
    return (f"{d['repeat']} runs each, seconds:\n\n" + table(["command", "median", "min"], rows)
            + f"\n\n`lab list`: {d['probe']}")


def explain_table(d: dict) -> str:
    rows = [[k, f"{v['median']:.1f}", f"{v['min']:.1f}", f"{v['ratio_median']:.2f}x"]
            for k, v in d["variants"].items()]
    return (f"{d['setting']}; ms per explanation:\n\n"
            + table(["variant", "median ms", "min ms", "ratio (median)"], rows)
            + f"\n\nfigure rendering per image explanation: {d['figure_ms']:.0f} ms (median)"
            + ("" if "kinds" not in d else
               "\n\nPer explainer kind, ms per explanation (LIME with its deletion test; the "
               "KernelSHAP comparison the tabular labs and RL policies add; the figure):\n\n"
               + table(["kind (as in the lab)", "LIME ms", "KernelSHAP ms", "figure ms"],
                       [[k, f"{v['lime_ms']:.1f}",
                         "-" if v["shap_ms"] is None else f"{v['shap_ms']:.1f}",
                         f"{v['figure_ms']:.0f}"] for k, v in d["kinds"].items()])))


def cnn_epoch_table(d: dict) -> str:
    s = d["setting"]
    head = (f"{s['model']}; {s['data']}; {s['optimizer']}; batch {s['batch']}, {s['epochs']} "
            f"epochs, {s['torch_threads']} torch thread(s), {s['rounds']} rounds, "
            f"{s['process']}; median (range):")
    return head + "\n\n" + table(
        ["variant", "ms/epoch", "/ hand loop (same round)", "test acc"],
        [[d["labels"][v], _mr(r["ms_per_epoch"]), _mr(r["ratio_to_hand"], "{:.2f}"),
          f"{r['test_acc']:.3f}"] for v, r in d["variants"].items()])


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def rl_table(d: dict) -> str:
    """bench_rl.py: per agent, how many seeds solved CartPole, when, and how fast."""
    rows = []
    for r in d["results"].values():
        runs = r["seeds"]
        solved = [x for x in runs.values() if x["solved"]]
        per_seed = " / ".join(
            f"{x['solved_step'] / 1000:.1f}k in {x['seconds']:.0f} s" if x["solved"]
            else f"no ({x['best_eval_return']:.0f})" for x in runs.values())
        speed = _median([x["steps_per_second"] for x in runs.values()])
        rows.append([r["label"], f"{r['budget'] / 1000:.0f}k", f"{len(solved)}/{len(runs)}",
                     per_seed,
                     " / ".join(f"{x['best_eval_return']:.0f}" for x in runs.values()),
                     f"{speed:,.0f}"])
    return (f"CartPole-v1, seeds {', '.join(map(str, d['seeds']))}; solved = an evaluation's "
            f"mean return >= 475 over {d.get('eval_episodes', 20)} greedy episodes (training "
            f"stops there; the wall time includes the evaluations); one process per seed:\n\n"
            + table(["agent", "step budget", "solved", "solved at (step, wall) per seed",
                     "best eval per seed", "env steps/s (median)"], rows))


def sb3_bridge_table(d: dict) -> str:
    """bench_sb3_bridge.py: the bridge's cost over a bare `model.learn`, wall and CPU time."""
    st = d["setting"]
    rows = [[v["label"], _mr(v["seconds"], "{:.2f}"), _mr(v["ratio_to_bare"], "{:.2f}"),
             _mr(v["cpu_seconds"], "{:.2f}"), _mr(v["cpu_ratio_to_bare"], "{:.2f}"),
             f"{v['steps_per_second']:,}"] for v in d["variants"].values()]
    return (f"{st['agent']}, {st['steps']:,} steps, {st['rounds']} rounds, "
            f"{st['torch_threads']} torch thread(s), {st['process']}; {st['timed']} is timed; "
            f"median (range), ratios to the bare run of the same round (target <= "
            f"{st['target_bridge_over_bare']:.2f}):\n\n"
            + table(["variant", "wall s", "wall / bare", "CPU s", "CPU / bare", "steps/s"],
                    rows))


def _first_epoch(curve: list[float], level: float = 0.9) -> str:
    """The first epoch (1-based) at which a validation curve reached `level`, "-" if never."""
    return next((str(i) for i, v in enumerate(curve, 1) if v >= level), "-")


def rnn_sequence_table(d: dict) -> str:
    """bench_rnn_sequence.py: memory accuracy per seed and cell, and how many seeds separate."""
    cells = ("rnn", "lstm", "gru")
    names = {"rnn": "simple RNN", "lstm": "LSTM", "gru": "GRU"}
    runs = d["seeds"]
    rows = [[seed, *(f"{r['acc'][c]:.2f}" for c in cells),
             " / ".join(_first_epoch(r["val_acc_per_epoch"][c]) for c in cells),
             "yes" if r["separates"] else "no", f"{r['seconds']:.0f}"]
            for seed, r in runs.items()]
    n_sep = sum(r["separates"] for r in runs.values())
    crit = d["criterion"]
    epochs = len(next(iter(runs.values()))["val_acc_per_epoch"]["rnn"])
    sets = ", ".join(f"{k}={v}" for k, v in d.get("overrides", {}).items())
    out = [f"`rnn-sequence` defaults{f' with {sets}' if sets else ''} ({epochs} epochs), "
           f"`lengths=[{d['length']}]` (the sign of the first element, then {d['length']} "
           f"noise steps), no explanations, one process per seed; test accuracy (chance 0.5); "
           f"separates = LSTM and GRU >= {crit['gated_min']} and the simple RNN <= "
           f"{crit['rnn_max']}:", "",
           table(["seed", *(names[c] for c in cells),
                  "first epoch with val acc >= 0.9 (RNN / LSTM / GRU)", "separates", "wall s"],
                 rows), "",
           f"separated on {n_sep} of {len(runs)} seeds; median accuracy "
           + ", ".join(f"{names[c]} {_median([r['acc'][c] for r in runs.values()]):.2f}"
                       for c in cells) + "."]
    if "default_run" in d:
        r, m = d["default_run"], d["default_run"]["metrics"]
        lengths = sorted({int(k.rsplit("_L", 1)[1]) for k in m if "_acc_L" in k})
        acc = "; ".join(f"L={n}: " + " / ".join(f"{m[f'{c}_acc_L{n}']:.2f}" for c in cells)
                        for n in lengths)
        mse = ", ".join(f"{names[c]} {m[f'{c}_test_mse']:.3f}" for c in cells)
        out += ["", f"The whole default command (`lab run rnn-sequence --no-track`, every "
                    f"length, LIME on, seed 0): {r['seconds']:.0f} s; memory accuracy "
                    f"(simple RNN / LSTM / GRU) {acc}; forecast test MSE {mse} vs naive "
                    f"{m['naive_test_mse']:.3f}, seasonal-naive "
                    f"{m['seasonal_naive_test_mse']:.3f}."]
    return "\n".join(out)


SECTIONS = [  # (json name, title, how to run, table function)
    ("trainer", "Training loop: the shared trainer vs a hand-written loop",
     "python benchmarks/bench_trainer.py", trainer_table),
    ("labs", "Whole `lab` commands", "python benchmarks/bench_labs.py", labs_table),
    ("labs", "Import costs", "python benchmarks/bench_labs.py", imports_table),
    ("figures", "Figures", "python benchmarks/bench_figures.py", figures_table),
    ("threads", "Torch threads on small models", "python benchmarks/bench_threads.py",
     threads_table),
    ("cli", "CLI start-up", "python benchmarks/bench_cli.py", cli_table),
    ("explain", "LIME through the framework vs bare lime", "python benchmarks/bench_explain.py",
     explain_table),
    ("cnn_epoch", "A digits-cnn epoch: `run.fit` vs a hand-written loop",
     "python benchmarks/bench_cnn_epoch.py", cnn_epoch_table),
    ("rl", "CartPole-v1: our agents vs Stable-Baselines3", "python benchmarks/bench_rl.py",
     rl_table),
    ("sb3_bridge", "The SB3 bridge against a bare `model.learn`",
     "python benchmarks/bench_sb3_bridge.py", sb3_bridge_table),
    ("rnn_sequence", "rnn-sequence: does the memory lesson hold across seeds?",
     "python benchmarks/bench_rnn_sequence.py", rnn_sequence_table),
]


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def full() -> str:
    """All tables, for benchmarks/README.md."""
    out, machines = [], {}
    for name, title, cmd, fn in SECTIONS:
        d = load(name)
        out += [f"### {title}", "", f"`{cmd}` → `benchmarks/results/{name}.json`", ""]
        if d is None:
            out += ["_not measured yet_", ""]
            continue
        machines[name] = d.get("machine")
        out += [fn(d), "", machine_line(d["machine"]) if d.get("machine") else "", ""]
    return "\n".join(out).rstrip() + "\n"


def summary() -> str:
    """The short list for the top-level README's "Measured" section."""
    lines = []
    t, labs, th, fg = load("trainer"), load("labs"), load("threads"), load("figures")
    m = next((d["machine"] for d in (t, labs, th, fg) if d), None)
    if m:
        load_at = m.get("load_1min_at_start")
        lines += [f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m.get('gpu') or 'none'}, "
                  f"torch {m['versions'].get('torch')}"
                  + (f"; 1-minute load {load_at:.1f} when the runs began (a shared machine: "
                     f"read the ratios)" if load_at is not None else "") + ".", ""]
    if t:
        for b, rows in t["batches"].items():
            r = {v: x["ratio_to_hand"]["median"] for v, x in rows.items()}
            fastest = min(rows["hand"]["raw_ms"])
            rf = {v: min(x["raw_ms"]) / fastest for v, x in rows.items()}
            hand = rows["hand"]["ms_per_epoch"]["median"]
            parts = ([f"the same loop logging loss and accuracy {r['hand-metrics']:.2f}x"]
                     if "hand-metrics" in r else [])
            parts += [f"bare `Trainer` {r['trainer']:.2f}x", f"`run.fit` {r['fit']:.2f}x",
                     f"with W&B offline {r['fit-wandb']:.2f}x (W&B's start-up overlaps these "
                     f"sub-second fits)"]
            if "lightning" in r:
                parts.append(f"Lightning {r['lightning']:.2f}x")
            lines.append(f"- Digits MLP, batch {b}: hand-written loop {hand:.1f} ms/epoch; "
                         + ", ".join(parts) + f"; fastest run against fastest run: bare "
                         f"`Trainer` {rf['trainer']:.2f}x, `run.fit` {rf['fit']:.2f}x"
                         + _same_process_summary(t, b) + " (`bench_trainer.py`).")
        if "lightning" not in t["labels"]:
            lines.append("  Lightning was not installed for this run (`pip install -e "
                         "\".[bench]\"`).")
    if labs:
        c = {k: v["median"] for k, v in labs["commands"].items()}
        lines.append(
            f"- Wall time (`bench_labs.py`): `lab list` {c['lab list']:.2f} s; "
            f"`lab run digits-mlp` {c['lab run digits-mlp']:.1f} s "
            f"({c['lab run digits-mlp --no-track']:.1f} s with `--no-track`); xor-mlp "
            f"{c['lab run xor-mlp']:.1f} s; perceptron-gates {c['lab run perceptron-gates']:.1f}"
            f" s (floor: `import torch` alone "
            f"{labs['imports']['torch']['median']:.1f} s"
            + (f", torch plus its first optimizer step {floor:.1f} s" if (floor := labs.get(
                "checks", {}).get("floor of a training lab (python + torch + first optimizer "
                                  "step), s")) else "") + ").")
    cnn = load("cnn_epoch")
    if cnn:
        r = cnn["variants"]["fit"]["ratio_to_hand"]["median"]
        lines.append(f"- digits-cnn epoch through `run.fit`: {r:.2f}x the hand-written loop "
                     f"doing the same work (`bench_cnn_epoch.py`).")
    sb3 = load("sb3_bridge")
    if sb3:
        v = sb3["variants"]
        lines.append(f"- SB3 bridge (PPO on CartPole, `model.learn` timed): "
                     f"{v['bridge']['ratio_to_bare']['median']:.2f}x a bare `model.learn`, "
                     f"{v['bridge-wandb']['ratio_to_bare']['median']:.2f}x with W&B offline "
                     f"(`bench_sb3_bridge.py`).")
    if fg:
        lines.append(f"- Figures (`bench_figures.py`): saving the 7 reference figures "
                     f"{fg['total_save_ms']['before']:.0f} ms before, "
                     f"{fg['total_save_ms']['now']:.0f} ms now (Agg canvas, dpi 100).")
    if th:
        a = th["results"]["contended"]["mlp-64"]
        one, two = (a[n]["wall_ms_per_epoch"]["median"] for n in ("1", "2"))
        lines.append(f"- Threads (`bench_threads.py`): digits MLP with another process busy: "
                     f"{one:.0f} ms/epoch on 1 thread, {two:.0f} on 2; hence `threads=0` "
                     f"(auto) uses 1 thread on machines with <= 2 cores.")
    rl = load("rl")
    if rl:
        parts = []
        for r in rl["results"].values():
            runs = list(r["seeds"].values())
            speed = _median([x["steps_per_second"] for x in runs])
            parts.append(f"{r['label'].split(' (')[0]} {sum(x['solved'] for x in runs)}/"
                         f"{len(runs)} ({speed:,.0f} steps/s)")
        lines.append("- CartPole-v1 solved (mean >= 475 over 20 evaluation episodes) per seed, "
                     "same budgets (`bench_rl.py`): " + ", ".join(parts) + ".")
    rs = load("rnn_sequence")
    if rs:
        runs = rs["seeds"]
        learned = [s for s, r in runs.items() if r["acc"]["rnn"] > rs["criterion"]["rnn_max"]]
        crit, n_sep = rs["criterion"], sum(r["separates"] for r in runs.values())
        lines.append(f"- rnn-sequence's memory lesson at L={rs['length']} "
                     f"(`bench_rnn_sequence.py`): LSTM and GRU >= {crit['gated_min']} and the "
                     f"simple RNN <= {crit['rnn_max']} on {n_sep} of {len(runs)} seeds"
                     + (f" (the simple RNN learned it too on seed(s) {', '.join(learned)})"
                        if learned else "") + ".")
    lines.append("- Every table, with the machine it ran on: "
                 "[benchmarks/README.md](benchmarks/README.md).")
    return "\n".join(lines) + "\n"


def _same_process_summary(t: dict, b: str) -> str:
    r = t.get("same_process", {}).get("batches", {}).get(b)
    if not r:
        return ""
    v = r["variants"]
    return (f"; alternating in one process: bare `Trainer` "
            f"{v['trainer']['ratio_to_hand']['median']:.2f}x, `run.fit` "
            f"{v['fit']['ratio_to_hand']['median']:.2f}x (fastest/fastest "
            f"{v['fit']['fastest_over_fastest_hand']:.2f}x)")


def splice(path: Path, body: str) -> str:
    text = path.read_text()
    pat = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pat.search(text):
        raise SystemExit(f"{path}: no {START} ... {END} markers")
    return pat.sub(lambda _: f"{START}\n{body}{END}", text, count=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    stale = []
    for path, body in ((ROOT / "README.md", summary()),
                       (ROOT / "benchmarks" / "README.md", full())):
        new = splice(path, body)
        if new != path.read_text():
            stale.append(path)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        raise SystemExit(f"out of date: {', '.join(map(str, stale))}; run benchmarks/render.py")
    print("updated: " + (", ".join(map(str, stale)) or "nothing"))


if __name__ == "__main__":
    main()
