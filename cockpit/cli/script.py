"""``cockpit run --script train.py [ARGS...]``: a training script of another framework, with the cockpit on it.

The script trains in its own process, as it would without Cockpit; its adapter
(``CockpitHook`` for MMEngine, ``CockpitCallback`` for Lightning or the Hugging Face Trainer)
serves the run. In a terminal the script runs in a session of its own, so a closed terminal
or a dropped SSH connection never costs the run; the adapter announces its run folder in the
file ``$COCKPIT_ANNOUNCE`` names, and this process shows the cockpit on it as ``attach``
would. With ``--no-tui`` or without a terminal, the script simply takes this process's place.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cockpit.adapters import ANNOUNCE_VARIABLE
from cockpit.cli.common import EXIT_OK, EXIT_TRAINING_ERROR, UsageError, printable_text

#: ``run`` options that describe a Cockpit config run, and mean nothing to a script.
NOT_WITH_SCRIPT = ("config", "resume", "cfg_options", "work_dir", "nproc", "listen", "trust_checkpoint", "force")


def split_script_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``run ... --script S A B`` as ``(run ... --script S, [A, B])``: all after the script is the script's."""
    if not argv or argv[0] != "run":
        return argv, []
    for index, arg in enumerate(argv):
        if arg == "--script":
            return argv[: index + 2], argv[index + 2:]
        if arg.startswith("--script="):
            return argv[: index + 1], argv[index + 1:]
        if arg == "--":
            break
    return argv, []


def check_script_args(args: argparse.Namespace) -> Path:
    """The script to run; a usage error for options that only a config run takes."""
    given = [name for name in NOT_WITH_SCRIPT if getattr(args, name, None) not in (None, False, [], 1)]
    if given:
        flags = ", ".join("CONFIG" if name == "config" else "--" + name.replace("_", "-") for name in given)
        raise UsageError(f"--script runs a training script of another framework, which takes no {flags} (only a "
                         "Cockpit config run does); give the script's own arguments after it: "
                         "cockpit run --script train.py ARGS...")
    script = Path(args.script).expanduser()
    if not script.is_file():
        raise UsageError(f"--script {args.script}: no such file; give the path of a Python training script "
                         "that adds Cockpit's hook or callback (see the README's adapters section)")
    return script


def run_script(args: argparse.Namespace) -> int:
    script = check_script_args(args)
    command = [sys.executable, str(script), *args.script_args]
    if not args.detach and (args.no_tui or not sys.stdout.isatty()):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, command)  # the script is this process now: its output, signals, exit status
    print(f"cockpit: starting {script.name}…", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="cockpit-script-"))  # 0700: its output may hold secrets
    announce, output = folder / "announce.json", folder / "output.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True,
                                   env={**os.environ, ANNOUNCE_VARIABLE: str(announce), "PYTHONUNBUFFERED": "1"})
    hint_at = time.monotonic() + 60
    try:
        while not announce.is_file():
            if process.poll() is not None:
                return _ended_before_serving(process.returncode, script, output)
            if time.monotonic() > hint_at:
                hint_at = float("inf")
                print(f"cockpit: {script.name} has not served a cockpit yet; if it goes on training, it has no "
                      f"Cockpit hook or callback (see the README), or it could not serve: its output is {output}; "
                      "Ctrl-C leaves it running", flush=True)
            time.sleep(0.05)
    except KeyboardInterrupt:
        print(f"cockpit: left {script.name} starting in the background (pid {process.pid}); its output: {output}",
              flush=True)
        return EXIT_OK
    run_dir = Path(json.loads(announce.read_text())["run_dir"])
    print(f"cockpit: {script.name} serves its run from {printable_text(str(run_dir))}; its output: {output}",
          flush=True)
    if args.detach:
        print(f"  watch it:   cockpit attach {run_dir}\n  steer it:   cockpit ctl {run_dir} save|pause|continue|stop",
              flush=True)
        return EXIT_OK
    from cockpit.cli.show import cmd_attach

    code = cmd_attach(argparse.Namespace(run=str(run_dir), plain=False))
    ended = process.poll()
    if ended:
        print(f"cockpit: {script.name} exited with status {ended}; the end of its output ({output}):\n"
              + "\n".join(output.read_text(errors="replace").rstrip().splitlines()[-15:]), file=sys.stderr, flush=True)
        return EXIT_TRAINING_ERROR
    return code


def _ended_before_serving(code: int, script: Path, output: Path) -> int:
    tail = "\n".join(output.read_text(errors="replace").rstrip().splitlines()[-20:])
    if code == 0:
        print(f"cockpit: {script.name} ended without serving a cockpit: does it add Cockpit's hook or callback "
              f"(custom_hooks=[dict(type='CockpitHook')], callbacks=[CockpitCallback()])? Its output:\n{tail}",
              flush=True)
        return EXIT_OK
    print(f"cockpit: {script.name} exited with status {code} before it trained; its output ({output}):\n{tail}",
          file=sys.stderr, flush=True)
    return EXIT_TRAINING_ERROR
