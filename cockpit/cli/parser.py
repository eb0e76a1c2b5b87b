"""The ``cockpit`` command line: its parser, ``--listen`` addresses, and a run's options as a command line."""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cockpit.cfg_options import CfgOptionsAction
from cockpit.cli.common import EXIT_CODES, RESUME_HELP, UsageError, commands_help


class _CtlHelp(argparse.Action):
    """``ctl --help``: lists the built-in commands, read only then (the command table is not light)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from cockpit.commands import builtin_commands

        parser.epilog = "built-in commands:\n" + commands_help([c.describe() for c in builtin_commands()])
        parser.print_help()
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="print tracebacks here too (the run's log file always has them)")
    parser = argparse.ArgumentParser(
        prog="cockpit", formatter_class=raw, epilog=EXIT_CODES,
        description="Train PyTorch models from a Python config, and watch and steer the run.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run", parents=[common], help="train from a config file, or continue a run", formatter_class=raw,
        epilog=RESUME_HELP + "\n" + EXIT_CODES,
        description="Train from a config file. In a terminal the training runs in its own process (it survives "
                    "a closed terminal or a dropped SSH connection) and this one shows it; with --no-tui or no "
                    "terminal it trains here, printing progress lines.")
    run.add_argument("config", nargs="?", help="the Python config file (not needed with --resume RUN_FOLDER)")
    run.add_argument("--work-dir", help="where checkpoints and run folders go (default: work_dirs/<config name>)")
    run.add_argument("--cfg-options", nargs="+", default=[], action=CfgOptionsAction, metavar="KEY=VALUE",
                     help="override config keys, e.g. train_cfg.max_epochs=5 model.hidden=64")
    run.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN|CKPT",
                     help="continue a run folder, or from a checkpoint (a path or a name in the work dir); "
                          "alone: from the newest checkpoint in the work dir")
    run.add_argument("--fork-from", metavar="CHECKPOINT",
                     help="start a new run (a work dir of its own) from a checkpoint of another run: its weights, "
                          "optimizer, schedulers and position, with this config and --cfg-options; the new run "
                          "records its parent")
    run.add_argument("--force", action="store_true",
                     help="resume even if the config differs from the one the checkpoint was trained with")
    run.add_argument("--no-tui", action="store_true", help="train in this process, printing plain progress lines")
    run.add_argument("--detach", action="store_true",
                     help="start the run in the background; return once it trains")
    run.add_argument("--nproc", type=int, default=1, metavar="N",
                     help="train with N processes on this machine through torchrun (DDP; gloo on CPU, nccl on GPUs)")
    run.add_argument("--listen", metavar="[HOST:]PORT",
                     help="also serve views over TCP, on 127.0.0.1 unless HOST is given (PORT 0: free ports); "
                          "encrypted, and the connection file's keys are required")
    run.add_argument("--listen-remote", action="store_true",
                     help="allow --listen on an address other machines can reach (0.0.0.0, a LAN address)")
    run.add_argument("--script", metavar="SCRIPT",
                     help="run a training script of MMEngine, Lightning or the Hugging Face Trainer that adds "
                          "Cockpit's hook or callback, and show the cockpit on it; everything after SCRIPT is the "
                          "script's own arguments (give cockpit's options before --script)")
    run.add_argument("--trust-checkpoint", action="store_true",
                     help="allow checkpoints that need arbitrary pickles (only for files you trust)")
    for hidden in ("--timestamp", "--staging-output"):  # between a launcher and its training processes
        run.add_argument(hidden, help=argparse.SUPPRESS)
    run.add_argument("--checked", action="store_true", help=argparse.SUPPRESS)

    attach = commands.add_parser("attach", parents=[common], help="watch and steer a run that is already going",
                                 description="Attach to a live run (default: the newest under ./work_dirs). "
                                             "Leaving (q, Ctrl-C) asks whether to detach or stop the run.")
    attach.add_argument("run", nargs="?", help="a run folder, its connection file, or a folder of runs")
    attach.add_argument("--plain", action="store_true", help="print progress lines instead of the cockpit")

    ls = commands.add_parser("ls", help="list live and finished runs (-i: a live dashboard)",
                             description="List runs under a folder. With -i, a dashboard of them in the terminal, "
                                         "refreshed live: Enter attaches to a run, space selects runs, c overlays "
                                         "their scalars.")
    ls.add_argument("root", nargs="?", default="work_dirs", help="where to look (default: ./work_dirs)")
    ls.add_argument("-i", "--interactive", "--watch", action="store_true", dest="interactive",
                    help="the runs dashboard (in a terminal; elsewhere the table is printed)")

    ctl = commands.add_parser(
        "ctl", parents=[common], add_help=False, help="send one command to a run",
        description="Send one command to a live run and wait for its outcome. Exit status: 0 applied, "
                    "1 rejected or failed, 2 the run could not be reached. `cockpit ctl RUN help` lists the "
                    "run's commands, including those its hooks offer.",
        formatter_class=raw)
    ctl.add_argument("-h", "--help", action=_CtlHelp)
    ctl.add_argument("run", help="a run folder, its connection file, or a folder of runs (its newest live one)")
    ctl.add_argument("name", metavar="COMMAND", help="the command, or 'help'")
    ctl.add_argument("args", nargs="*", help="the command's arguments")
    ctl.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the outcome")

    hooks = commands.add_parser("hooks", parents=[common], help="print the hook order of a config without training",
                                description="Print, per stage, the hooks in execution order with their priorities.")
    hooks.add_argument("config", help="the Python config file")
    hooks.add_argument("--cfg-options", nargs="+", default=[], action=CfgOptionsAction, metavar="KEY=VALUE",
                       help="override config keys")
    return parser



def listen_address(value: str, remote: bool) -> str:
    """``HOST:PORT`` from ``--listen`` (loopback unless a host is given).

    Raises:
        UsageError: not an address, a port out of range, or a network address without ``--listen-remote``.
    """
    text = value.strip()
    host, sep, port = text.rpartition(":") if ":" in text else ("", "", text)
    host = host.strip() or "127.0.0.1"
    example = "--listen 5555 (127.0.0.1:5555) or --listen 127.0.0.1:0 (free ports)"
    if not port.isdigit() or int(port) > 65534:
        raise UsageError(f"--listen {value!r}: the port must be a number from 0 to 65534 (PORT+1 carries the "
                         f"events); write {example}")
    bare = host.removeprefix("[").removesuffix("]")
    if host in ("*", ""):
        loopback = False
    elif bare == "localhost":
        loopback = True
    else:
        try:
            loopback = ipaddress.ip_address(bare).is_loopback
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", bare):
                raise UsageError(f"--listen {value!r}: {host!r} is not a host name or an IP address; "
                                 f"write {example}") from None
            loopback = False
    if not loopback and not remote:
        raise UsageError(f"--listen {value!r} serves on an address other machines may reach; add "
                         f"--listen-remote to allow that, or listen on loopback ({example})")
    if not loopback:
        print(f"cockpit: warning: serving on {host}:{port}, which other machines may reach; the traffic is "
              "encrypted and only holders of the run's connection file get in", file=sys.stderr, flush=True)
    return f"{host}:{port}"


def run_args(args: argparse.Namespace) -> list[str]:
    """The ``run`` options of ``args`` as a command line, for a training process started from here."""
    line = [args.config] if args.config else []
    if args.work_dir:
        line += ["--work-dir", str(Path(args.work_dir).resolve())]
    if args.cfg_options:
        line += ["--cfg-options", *args.cfg_options]
    if args.resume is True:
        line.append("--resume")
    elif isinstance(args.resume, str):
        line += ["--resume", args.resume]
    if getattr(args, "fork_from", None):
        line += ["--fork-from", str(Path(args.fork_from).expanduser().resolve())
                 if Path(args.fork_from).expanduser().is_file() else args.fork_from]
    if args.listen:
        line += ["--listen", args.listen]
    for flag in ("force", "listen_remote", "trust_checkpoint", "debug"):
        if getattr(args, flag, False):
            line.append("--" + flag.replace("_", "-"))
    if args.nproc > 1:
        line += ["--nproc", str(args.nproc)]
    return line
