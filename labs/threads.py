"""How many CPU threads torch uses for one op (`LabConfig.threads`).

torch starts one intra-op thread per core. On a machine with few cores that buys little for
the small models most labs train, and it collapses when another process wants a core: on 2
cores, the digits MLP took 10-16 ms/epoch with 1 thread and 55-240 ms/epoch with 2 while
other work ran (benchmarks/bench_threads.py, benchmarks/README.md). Hence the rule for
`threads=0` (auto): 1 thread when this process may use at most 2 cores, torch's own default
otherwise (the count torch had before the process's first run: what an earlier run of the
same process set does not carry over). Set `threads=N` to choose; the effective number is
recorded in config.yaml, since it changes the order of floating-point sums (and so the last
digits of a run's numbers).
"""

from __future__ import annotations

import os

from labs.errors import ConfigError

FEW_CORES = 2  # at or below this many usable cores, auto means 1 thread


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve(requested: int) -> int | None:
    """The thread count for `requested` (0: auto); None means "leave torch's default"."""
    if requested < 0:
        raise ConfigError(f"threads must be >= 0 (0: auto), got {requested}")
    if requested > 0:
        return requested
    return 1 if usable_cores() <= FEW_CORES else None


_torch_default: int | None = None  # torch's count before this process's first run set one


def apply(requested: int) -> int:
    """Set torch's intra-op threads for `requested` (0: auto) and return the effective count."""
    import torch

    global _torch_default
    if _torch_default is None:
        _torch_default = torch.get_num_threads()
    # "torch's default" is the count the process started with, set again: left alone, auto
    # kept whatever an earlier run of the process set (threads=1, then auto on 16 cores: 1),
    # and the thread count changes the order of float sums, so the same config gave other
    # numbers after another run
    n = resolve(requested) or _torch_default
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch.get_num_threads()
