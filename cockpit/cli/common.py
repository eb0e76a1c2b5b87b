"""What every part of the ``cockpit`` command shares: exit codes, help texts, run files, small helpers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_TRAINING_ERROR, EXIT_USAGE = 0, 1, 2
#: 128 + N: a second signal N ended the run at once, without the final save (the shells' convention).
EXIT_SIGNAL_BASE = 128

EXIT_CODES = """\
exit status:
  0        done: trained to the end, stopped gracefully (it saved first), already complete,
           or you left the cockpit (the run goes on)
  1        the training failed after it started (the run's log and console.log say why);
           ctl: the command was rejected or failed
  2        bad usage, a bad config or --cfg-options value, an unusable checkpoint or a refused
           resume: nothing trained and no run folder is left; attach/ctl: the run cannot be
           reached (not started, finished, or its process is gone)
  128+N    a second signal N ended the run at once, without its final save (Ctrl-C: 130,
           SIGTERM: 143, SIGHUP: 129); the newest complete checkpoint is still good
"""

RESUME_HELP = """\
continuing a run:
  cockpit run --resume RUN_FOLDER          the run's own config (as it was resolved, overrides
                                           included) and its newest checkpoint
  cockpit run cfg.py --resume              the newest complete checkpoint in the work dir
  cockpit run cfg.py --resume epoch_3.pth  a checkpoint: a path, or a name in the work dir
A resume whose config differs from the one the checkpoint was trained with is refused, naming
the keys that differ; --force resumes anyway. The length (train_cfg.max_epochs or max_iters)
may change: that is how a finished run trains further, e.g.
  cockpit run --resume RUN_FOLDER --cfg-options train_cfg.max_epochs=20
To continue with other options, fork: a new run in a work dir of its own starts from the
checkpoint (weights, optimizer, schedulers, position) and records its parent, e.g.
  cockpit run cfg.py --fork-from work_dirs/cfg/epoch_3.pth --cfg-options optim_wrapper.optimizer.lr=0.01
"""

#: Keys a resume may change without --force: where and how the run is started, and its length.
RESUME_MAY_CHANGE = frozenset({"resume", "load_from", "work_dir", "launcher", "experiment_name",
                               "train_cfg.max_epochs", "train_cfg.max_iters"})
CONSOLE_FILE, RUN_FILE = "console.log", "run.json"


class UsageError(Exception):
    """A command line that cannot work; the message says what to write instead."""


def read_run(path: Path) -> Any:
    from cockpit.views import read_run as read

    return read(path)


def read_runs(root: Path, depth: int = 3) -> list[Any]:
    from cockpit.views import read_runs as read

    return read(root, depth)


def printable_text(value: Any, limit: int = 200) -> str:
    from cockpit.views import printable

    return printable(value if isinstance(value, str) else "")[:limit]



def commands_help(commands: list[dict]) -> str:
    """``usage  description`` lines for a run's commands (as the run describes them)."""
    lines = []
    for command in commands:
        usage = command.get("usage") or command["name"]
        lines.append(f"  {usage:<28} {command['description']}")
        for arg in command.get("args", []):
            if isinstance(arg, dict) and arg.get("help"):
                lines.append(f"  {'':<28}   {arg['name']}: {arg['help']}")
    return "\n".join(lines)



def one_line(error: BaseException) -> str:
    """An error's message in one line: torch's advice inside a "corrupt" message is left out."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    corrupt = re.match(r"(?P<path>.+?) is (?:truncated or )?corrupt(?: and cannot be loaded)?\b", text)
    if corrupt:
        return f"{corrupt.group('path')} is corrupt or not a checkpoint (it cannot be read as one)"
    return text

