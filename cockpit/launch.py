"""Entry point for torchrun: ``torchrun --nproc-per-node N -m cockpit.launch cfg.py [run options]``.

Each process runs the config with ``launcher='pytorch'`` (unless the config says
``'slurm'``); rank 0 logs, saves checkpoints and serves the cockpit. It takes
the same options as ``cockpit run`` (always without the terminal UI: attach one
with ``cockpit attach``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from cockpit.cli import main as cli_main

    return cli_main(["run", "--no-tui", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
