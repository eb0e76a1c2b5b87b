"""The ``cockpit`` command.

Exit codes: 0 done, 1 the training failed, 2 bad usage or a bad config.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from cockpit.errors import CheckpointError, ConfigError

EXIT_OK, EXIT_TRAINING_ERROR, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cockpit",
        description="Train PyTorch models from a Python config, and watch and steer the run.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", help="train from a config file",
                              description="Train from a config file, printing progress lines.")
    run.add_argument("config", help="the Python config file")
    run.add_argument("--work-dir", help="where checkpoints and run folders go (default: work_dirs/<config name>)")
    run.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                     help="override config keys, e.g. train_cfg.max_epochs=5 model.hidden=64")
    run.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                     help="resume from CKPT, or from the newest checkpoint in the work dir when no path is given")
    run.add_argument("--no-tui", action="store_true", help="print plain progress lines instead of the cockpit")
    run.add_argument("--trust-checkpoint", action="store_true",
                     help="allow checkpoints that need arbitrary pickles (only for files you trust)")

    hooks = commands.add_parser("hooks", help="print the hook order of a config without training",
                                description="Print, per stage, the hooks in execution order with their priorities.")
    hooks.add_argument("config", help="the Python config file")
    hooks.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")
    return parser


def _load(args: argparse.Namespace):  # noqa: ANN202 - returns a Config
    from cockpit.config import Config

    cfg = Config.fromfile(args.config, args.cfg_options or None)
    if getattr(args, "work_dir", None):
        cfg["work_dir"] = args.work_dir
    resume = getattr(args, "resume", None)
    if resume is True:
        cfg["resume"] = True
    elif isinstance(resume, str):
        cfg["resume"] = resume
        cfg["load_from"] = None
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    from cockpit.runner import Runner

    cfg = _load(args)
    runner = Runner.from_cfg(cfg, trust_checkpoints=args.trust_checkpoint)
    print(f"cockpit: run folder {runner.log_dir}", flush=True)
    try:
        runner.train()
    except (ConfigError, CheckpointError) as error:
        if not runner.started:
            raise  # a bad config or resume request: a usage error
        print(f"cockpit: training failed: {error}", file=sys.stderr)
        return EXIT_TRAINING_ERROR
    except KeyboardInterrupt as error:
        print(f"cockpit: interrupted ({error or 'Ctrl-C'}); the newest complete checkpoint is named in "
              f"{runner.work_dir / 'last_checkpoint'}", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"cockpit: training failed; the run folder is {runner.log_dir}", file=sys.stderr)
        return EXIT_TRAINING_ERROR
    if runner.stop_reason:
        print(f"cockpit: stopped ({runner.stop_reason}) at epoch {runner.epoch}, iter {runner.iter}; "
              f"resume with: cockpit run {args.config} --resume", flush=True)
    else:
        print(f"cockpit: finished; checkpoints in {runner.work_dir}", flush=True)
    return EXIT_OK


def cmd_hooks(args: argparse.Namespace) -> int:
    from cockpit.runner import Runner

    cfg = _load(args)
    runner = Runner.from_cfg(cfg, log_to_console=False)
    print(runner.hooks_info())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cockpit`` console script."""
    # Like ``python -m``: modules in the current folder are importable from configs.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    args = _parser().parse_args(argv)
    handler = {"run": cmd_run, "hooks": cmd_hooks}[args.command]
    try:
        return handler(args)
    except ConfigError as error:
        print(f"cockpit: config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CheckpointError as error:
        print(f"cockpit: checkpoint error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
