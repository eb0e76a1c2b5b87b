"""``cockpit``'s entry point: parse, dispatch, and turn each kind of error into its message and exit code."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Sequence

from cockpit.cfg_options import parse_option
from cockpit.cli.common import EXIT_SIGNAL_BASE, EXIT_USAGE, UsageError, one_line
from cockpit.cli.parser import build_parser
from cockpit.cli.script import split_script_args
from cockpit.cli.show import cmd_attach, cmd_ctl, cmd_hooks, cmd_ls
from cockpit.cli.train import cmd_run
from cockpit.errors import CheckpointError, ConfigError


def _checkpoint_hint(error: CheckpointError) -> str:
    hint = getattr(error, "hint", "")
    if hint:
        return hint
    text = str(error)
    if "corrupt" in text:
        return ("resume from another checkpoint, or give none (--resume alone falls back past a corrupt file to the "
                "newest good one); --debug shows what the loader said")
    if "does not fit" in text or "in the file," in text or "missing " in text:
        return "resume with the config the checkpoint was trained with: cockpit run --resume RUN_FOLDER"
    return ""


def _blame_override(error: ConfigError, options: Sequence[str]) -> ConfigError:
    """A config error caused by a ``--cfg-options`` value, told as such (the file is not at fault)."""
    if not error.key or not options:
        return error
    for option in reversed(options):  # the last override of a key wins
        try:
            key, value = parse_option(option)
        except ConfigError:
            continue
        if error.key == key or error.key.startswith((key + ".", key + "[")):
            fix = "change the value given on the command line (the config file is not at fault)"
            return ConfigError(f"{error.message} (the override made {key} the {type(value).__name__} {value!r})",
                               file=f"--cfg-options {option}", key=error.key,
                               fix=f"{fix}; {error.fix}" if error.fix else fix)
        if key.startswith(error.key + "."):
            return ConfigError(f"{error.message} (note: --cfg-options {option} set {key} to "
                               f"the {type(value).__name__} {value!r})", file=error.file, key=error.key, fix=error.fix)
    return error


def _drop_current_folder() -> None:
    """Keep the current folder off ``sys.path`` (``python -m`` puts it first): a ``textual.py`` or
    ``torch.py`` lying in a shared folder must not run as whoever runs cockpit there. A config's own
    folder is importable while the config loads (``cockpit.config``, ``cockpit.build``)."""
    here = os.getcwd()
    wanted = set(filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    while sys.path and sys.path[0] in ("", here) and sys.path[0] not in wanted:
        sys.path.pop(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cockpit`` console script."""
    _drop_current_folder()
    argv, script_args = split_script_args(list(sys.argv[1:] if argv is None else argv))
    try:
        args = build_parser().parse_args(argv)
        args.script_args = script_args
    except SystemExit as exit_:  # --help, or bad usage (argparse printed why): an exit code, not a raise
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    handler = {"run": cmd_run, "attach": cmd_attach, "ls": cmd_ls, "ctl": cmd_ctl, "hooks": cmd_hooks}[args.command]
    debug = getattr(args, "debug", False)
    try:
        return handler(args)
    except UsageError as error:
        print(f"cockpit: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as error:
        if debug:
            traceback.print_exception(error)
        print(f"cockpit: config error: {_blame_override(error, getattr(args, 'cfg_options', None) or [])}",
              file=sys.stderr)
        return EXIT_USAGE
    except CheckpointError as error:
        if debug:
            traceback.print_exception(error)
        text = str(error) if "\n" in str(error) and str(error).startswith("resume refused") else one_line(error)
        hint = _checkpoint_hint(error)
        print(f"cockpit: checkpoint error: {text}" + (f"\n  hint: {hint}" if hint else ""), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cockpit: interrupted", file=sys.stderr)
        return EXIT_SIGNAL_BASE + signal.SIGINT
    except Exception as error:
        from cockpit.channel.auth import ConnectionError_

        if not isinstance(error, ConnectionError_):
            raise
        if debug:
            traceback.print_exception(error)
        print(f"cockpit: {error}", file=sys.stderr)
        return EXIT_USAGE

