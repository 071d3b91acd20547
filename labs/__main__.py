"""`python -m labs ...`: the `lab` command, and what torchrun starts on every rank
(`torchrun --nproc-per-node N -m labs run <lab>`)."""

from __future__ import annotations

import os
import sys

from labs.cli import main

if __name__ == "__main__":
    if int(os.environ.get("RANK", 0)) > 0:
        # ranks > 0 run the same lab silently: rank 0 prints the run (errors still show)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    try:
        code = main()
    finally:
        if "torch.distributed" in sys.modules:
            from labs import distributed

            distributed.cleanup()
    sys.exit(code)
