"""Entry point for torchrun: ``torchrun --nproc-per-node N -m cockpit.launch cfg.py [run options]``.

Each process runs the config with ``launcher='pytorch'`` (unless the config says
``'slurm'``); rank 0 logs, saves checkpoints and serves the cockpit. It takes
the same options as ``cockpit run`` (always without the terminal UI: attach one
with ``cockpit attach``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from cockpit.cli import main as cli_main

    return cli_main(["run", "--no-tui", *(sys.argv[1:] if argv is None else argv)])


def _exit(code: int) -> None:
    """Leave the process group, flush, and exit without interpreter teardown.

    torch 2.13 with gloo sometimes aborts in teardown after a run that finished
    ("terminate called without an active exception"); torchrun would then report a
    failed worker for a good run. Everything worth keeping is written and flushed.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
