"""The `lab` command. Sub-commands import what they need when they run: `lab --help` and
`lab list` never import torch, wandb or lime."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from labs.errors import LabError


class UsageError(LabError):
    """A command line argparse refuses (a missing argument, an unknown flag, a bad int)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one `error:` line, like every user error."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lab", description="Run deep-learning and RL labs: `lab list`, then `lab run NAME`.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    ls = sub.add_parser("list", help="list the installed labs (built-in and plugins)")
    ls.add_argument("pattern", nargs="?", default="*", help="glob on lab names, e.g. '*mlp*'")
    ls.add_argument("--tag", help="only labs with this tag (supervised, rl, ...)")

    info = sub.add_parser("info", help="a lab's summary, tags, source and config keys")
    info.add_argument("name")

    sm = sub.add_parser("summary", help="a lab's model(s) layer by layer: output shapes and "
                                        "parameter counts (torchinfo)")
    sm.add_argument("name")
    sm.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (repeatable), as for `lab run`")
    sm.add_argument("--config", metavar="FILE", help="a YAML or TOML file of config values")
    sm.add_argument("--depth", type=int, default=4, metavar="N",
                    help="nesting levels shown (default 4; the totals count every level)")

    run = sub.add_parser("run", help="run a lab")
    run.add_argument("name")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key (repeatable): --set lr=0.01 --set hidden=[128,64]")
    run.add_argument("--config", metavar="FILE", help="a YAML or TOML file of config values")
    run.add_argument("--epochs", help="shortcut for --set epochs=N")
    run.add_argument("--seed", help="shortcut for --set seed=N")
    run.add_argument("--device", help="shortcut for --set device=auto|cpu|cuda|mps")
    run.add_argument("--resume", metavar="RUN", help="continue a stopped run (its id or path)")
    run.add_argument("--no-explain", action="store_true", help="skip the LIME explanations")
    run.add_argument("--no-track", action="store_true", help="no Weights & Biases")
    run.add_argument("--wandb", choices=("offline", "online"),
                     help="W&B mode (default: $WANDB_MODE, else offline)")
    run.add_argument("--wandb-project", default=os.environ.get("WANDB_PROJECT", "labs"))
    run.add_argument("--wandb-entity", default=os.environ.get("WANDB_ENTITY"))
    run.add_argument("--runs-dir", help="where runs go (default: $LAB_RUNS_DIR or ./runs)")
    run.add_argument("--devices", type=int, metavar="N",
                     help="train data-parallel in N processes (torchrun; one per GPU on CUDA)")

    runs = sub.add_parser("runs", help="list past runs")
    runs.add_argument("lab", nargs="?", help="only this lab's runs")
    runs.add_argument("--runs-dir")

    ex = sub.add_parser("explain", help="explain more predictions of a saved run")
    ex.add_argument("run", help="a run id, <lab>/<id> or path")
    ex.add_argument("--input", metavar="FILE|TEXT",
                    help="an image file or a CSV row to explain; for text labs a sentence "
                         "(or a text file)")
    ex.add_argument("--samples", type=int, help="how many test samples to explain")
    ex.add_argument("--runs-dir")

    ev = sub.add_parser("eval", help="evaluate a saved run on its test data (no retraining)")
    ev.add_argument("run", help="a run id, <lab>/<id> or path")
    ev.add_argument("--runs-dir")

    sa = sub.add_parser("sample", help="draw samples from a saved generative run (no "
                                       "retraining) into <run>/samples/")
    sa.add_argument("run", help="a run id, <lab>/<id> or path")
    sa.add_argument("--n", type=int, default=64, help="how many samples (default 64)")
    sa.add_argument("--seed", type=int, help="noise seed (default: a new one per call)")
    sa.add_argument("--runs-dir")

    new = sub.add_parser("new", help="write a ready plugin package with a new lab")
    new.add_argument("name", help="the lab's name, e.g. my-mlp")
    new.add_argument("--dir", default=".", help="where to create the package (default: .)")
    from labs.scaffold import KINDS

    new.add_argument("--kind", default="supervised", choices=KINDS,
                     help="template (generative and rl templates come with those labs)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    args.argv = argv
    if args.command is None:
        _parser().print_help()
        return 0
    try:
        return COMMANDS[args.command](args) or 0
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        resume = getattr(e, "resume_command", None)
        print(f"interrupted: resume with: {resume}" if resume else "interrupted",
              file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError:  # `lab list | head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def cmd_list(args: argparse.Namespace) -> int:
    from labs.registry import discover

    reg = discover()
    specs = reg.select(args.pattern, args.tag)
    width = max((len(s.name) for s in specs), default=10)
    for s in specs:
        mark = "" if s.builtin else f"  [plugin: {s.dist}]"
        tags = f" ({', '.join(s.tags)})" if s.tags else ""
        print(f"{s.name:<{width}}  {s.summary}{tags}{mark}")
    for name, specs_ in sorted(reg.conflicts.items()):
        print(f"{name:<{width}}  ERROR: registered twice, by "
              + " and by ".join(f"{s.dist} ({s.entry_point})" for s in specs_))
    for s in reg.broken:
        print(f"{s.name:<{width}}  BROKEN ({s.dist}): {s.problem}")
    if not specs and not reg.conflicts and not reg.broken:
        print("no labs match" if args.pattern != "*" or args.tag else "no labs installed")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from labs import config
    from labs.registry import discover

    spec = discover().get(args.name)
    lab = spec.load()
    print(f"{spec.name}: {lab.describe()}")
    print(f"  tags:     {', '.join(lab.tags) or '-'}")
    if lab.lesson:
        from labs.lab import LESSONS

        print(f"  lesson:   {LESSONS.get(lab.lesson, lab.lesson)}")
    kind = "built-in" if spec.builtin else "third-party plugin"
    print(f"  source:   {spec.dist} ({kind}), {spec.entry_point}")
    print(f"  explains: {lab.explains}")
    rows = [(f.name, f.type_name, repr(f.default), f.help
             + (f" [{'|'.join(map(str, f.choices))}]" if f.choices else "")
             + (f"; {'each ' if f.per_item else ''}{f.range_text}" if f.range_text else ""))
            for f in config.fields(lab.Config)]
    widths = [max(len(r[i]) for r in rows + [("key", "type", "default", "")]) for i in range(3)]
    print("\n  " + "  ".join(h.ljust(w) for h, w in zip(("key", "type", "default"), widths))
          + "  help")
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    if args.depth < 0:
        raise LabError(f"--depth must be >= 0, got {args.depth}")
    from labs.config import parse_set
    from labs.runner import load_lab, resolve_config

    lab_cls = load_lab(args.name)
    cfg = resolve_config(lab_cls, parse_set(args.sets), args.config)
    from labs.summary import for_lab

    print("\n\n".join(s.text for s in for_lab(lab_cls(), cfg, depth=args.depth)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from labs.config import parse_set

    overrides = parse_set(args.sets)
    sources = {}
    for key in ("epochs", "seed", "device"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
            sources[key] = f"--{key}"
    if args.no_explain:
        overrides["explain"] = "false"
        sources["explain"] = "--no-explain"
    if args.resume and args.config:
        raise LabError("--resume continues a run with its saved config; drop --config")
    mode = "disabled" if args.no_track else (args.wandb or os.environ.get("WANDB_MODE")
                                            or "offline")
    if mode not in ("offline", "online", "disabled", "dryrun"):
        raise LabError(f"WANDB_MODE={mode} is not offline, online or disabled")
    if args.devices is not None and args.devices != 1:  # relaunch under torchrun
        from labs.distributed import launch

        return launch(args.devices, args.argv, args.name, overrides, config_file=args.config,
                      resume=bool(args.resume))
    from labs.runner import execute

    with _sigterm_interrupts(), _one_line_warnings():
        result = execute(args.name, overrides, config_file=args.config, resume=args.resume,
                         wandb_mode="offline" if mode == "dryrun" else mode,
                         wandb_project=args.wandb_project, wandb_entity=args.wandb_entity,
                         runs_dir=args.runs_dir, command=shlex.join(["lab", *args.argv]),
                         echo=True, sources=sources)
    print(f"run {result.run_id} finished: {result.dir}")
    for k, v in result.metrics.items():
        print(f"  {k:<24} {_num(v)}" if isinstance(v, float) else f"  {k:<24} {v}")
    return 0


def _num(v: float) -> str:
    """Four decimals, or four significant digits for a number they would print as 0.0000."""
    return f"{v:.4f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.4g}"


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run checkpoints, is marked interrupted, exits 143."""


class _sigterm_interrupts:
    """While a run runs, SIGTERM raises `Terminated` in the main thread (a second one kills)."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)

    @staticmethod
    def _raise(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # cleanup may be cut short by a second
        raise Terminated("SIGTERM")


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings during a run as `warning: ...`, one line each, without source lines."""
    print(f"warning: {message}", file=file or sys.stderr)


@contextlib.contextmanager
def _one_line_warnings():
    """While a command runs, its warnings print as `_one_line_warning` does."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        yield


def cmd_runs(args: argparse.Namespace) -> int:
    from labs.rundir import list_runs

    rows = list_runs(args.runs_dir, args.lab)
    if not rows:
        print("no runs yet: try `lab run digits-mlp`")
        return 0
    print(f"{'lab':<18} {'id':<22} {'created':<20} {'status':<12} headline")
    for r in rows:
        head = f"{r.headline}={_num(r.value)}" if isinstance(r.value, float) else (
            f"{r.headline}={r.value}" if r.headline else "-")
        if r.status in ("died", "interrupted"):
            head += f"  (resume: {r.resume_command})"
        if r.parent:
            head += f"  (part of {r.parent})"
        print(f"{r.lab:<18} {r.id:<22} {r.created:<20} {r.status:<12} {head}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    if args.samples is not None and args.samples < 1:
        raise LabError(f"--samples must be >= 1, got {args.samples}")
    from labs.reload import explain_saved

    with _one_line_warnings():
        res = explain_saved(args.run, input_file=args.input, samples=args.samples,
                            runs_dir=args.runs_dir)
    for note in res.notes:
        print(f"note: {note}")
    for pred in res.predictions:
        print(f"prediction: {pred}")
    print(f"explanations in {res.dir}")
    for k, v in res.summary.items():
        print(f"  {k:<24} {v:.4f}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from labs.reload import evaluate_saved

    with _one_line_warnings():
        out, metrics = evaluate_saved(args.run, runs_dir=args.runs_dir)
    for k, v in metrics.items():
        print(f"  {k:<24} {_num(v)}" if isinstance(v, float) else f"  {k:<24} {v}")
    print(f"metrics in {out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    if not 1 <= args.n <= 10_000:
        raise LabError(f"--n must be in [1, 10000], got {args.n}")
    from labs.sampling import sample_saved

    print(sample_saved(args.run, n=args.n, seed=args.seed, runs_dir=args.runs_dir))
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from labs.scaffold import new_plugin

    path = new_plugin(args.name, args.dir, kind=args.kind)
    print(f"created {path}\nnext: pip install -e {path} && lab run {args.name}")
    return 0


COMMANDS = {"list": cmd_list, "info": cmd_info, "summary": cmd_summary, "run": cmd_run,
            "runs": cmd_runs, "explain": cmd_explain, "eval": cmd_eval,
            "sample": cmd_sample, "new": cmd_new}

if __name__ == "__main__":
    sys.exit(main())
