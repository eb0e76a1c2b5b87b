"""Commands as data: what a run understands, and how each is shown, asked for and checked.

A ``Command`` declares everything a view needs to offer it: a label, a key, its
arguments (with the help a prompt shows), whether to ask for confirmation, and
when it applies (while the run is live, running or paused). The run publishes
the list (``describe()`` of each) in the hub's ``commands`` info; the terminal
UI's bindings, footer and palette, the notebook's buttons and ``cockpit ctl
help`` are all generated from it. No view holds a command name or its syntax.

``parse`` runs when a command is submitted, in the caller's thread: it checks
and normalises the arguments (``set`` turns ``*0.5`` into ``lr*=0.5``), so bad
input is refused at once. ``handler`` runs later, in the training thread, at a
safe point.

Built-ins: ``val``, ``save``, ``resume <checkpoint>``, ``pause``, ``continue``,
``stop [nosave]``, ``set <lr>``. Hooks add their own from ``Hook.commands()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cockpit.errors import CheckpointError

if TYPE_CHECKING:
    from cockpit.interface import RunContext


#: The built-in commands' names: code that sends one by name (a view's own way out, a notebook's
#: ``cockpit.save()``) uses these, so the names live here alone.
VAL, SAVE, RESUME, PAUSE, CONTINUE, STOP, SET = "val", "save", "resume", "pause", "continue", "stop", "set"
STOP_WITHOUT_SAVING = "nosave"
TRUST = "trust"


class CommandRejected(Exception):
    """A command that cannot be applied; the message says why (the run goes on untouched)."""


@dataclass(frozen=True)
class Arg:
    """One argument of a command.

    Args:
        name: what it is (``checkpoint``).
        help: what a prompt shows as a hint (``a checkpoint name, 'latest' or 'best'``).
        kind: ``'text'``, ``'checkpoint'`` (views offer a checkpoint picker) or ``'choice'``.
        choices: the allowed values of a ``'choice'``.
        optional: whether it may be left out.
    """

    name: str
    help: str = ""
    kind: str = "text"
    choices: tuple[str, ...] = ()
    optional: bool = False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "help": self.help, "kind": self.kind, "choices": list(self.choices),
                "optional": self.optional}


@dataclass(frozen=True)
class Command:
    """A command a run understands.

    Args:
        name: what is sent and typed (``save``).
        description: one line for help listings and tooltips.
        handler: ``handler(run, *args)``, called in the training thread at a safe point; returns a
            message saying what it did, raises ``CommandRejected`` to refuse.
        label: the text of its button or palette entry (defaults to the name).
        key: the terminal UI's key for it, or None.
        args: its arguments.
        parse: ``parse(args) -> args`` at submit time: checks and normalises them, raising
            ``CommandRejected`` for bad ones. Without it, the count of arguments is checked.
        confirm: a question to ask before sending it (``str.format``-ed with the arguments), or None.
        while_paused: whether it is applied while the run is paused (otherwise it waits for continue).
        when: when views offer it: ``'live'`` (while the run takes commands), ``'running'``, ``'paused'``,
            or ``'alert'`` (while the health guard holds the run).
    """

    name: str
    description: str
    handler: Callable[..., str | None]
    label: str = ""
    key: str | None = None
    args: tuple[Arg, ...] = ()
    parse: Callable[[Sequence[str]], Sequence[str]] | None = None
    confirm: str | None = None
    while_paused: bool = True
    when: str = "live"

    def __post_init__(self) -> None:
        # ``args=("text",)`` (names only) is short for ``args=(Arg("text"),)``.
        object.__setattr__(self, "args", tuple(Arg(a) if isinstance(a, str) else a for a in self.args))
        if self.when not in ("live", "running", "paused", "alert"):
            raise ValueError(f"command {self.name!r}: when must be 'live', 'running', 'paused' or 'alert', "
                             f"got {self.when!r}")
        if not self.label:
            object.__setattr__(self, "label", self.name.capitalize())

    @property
    def usage(self) -> str:
        parts = [self.name]
        for arg in self.args:
            parts.append(f"[{arg.name}]" if arg.optional else f"<{arg.name}>")
        return " ".join(parts)

    def check(self, args: Sequence[str]) -> tuple[str, ...]:
        """The arguments as the handler gets them, or ``CommandRejected`` saying what is wrong."""
        if self.parse is not None:
            return tuple(self.parse(args))
        required = sum(1 for arg in self.args if not arg.optional)
        count = {0: "no arguments", 1: "one argument", 2: "two arguments"}
        if len(args) < required:
            hint = f": {self.args[0].help}" if self.args[0].help else ""
            raise CommandRejected(f"{self.name} takes {count.get(required, f'{required} arguments')} "
                                  f"({self.usage}{hint}), got {' '.join(args)!r}")
        if len(args) > len(self.args):
            most = count.get(len(self.args), f"{len(self.args)} arguments")
            raise CommandRejected(f"{self.name} takes {'at most ' if self.args else ''}{most}"
                                  f"{f' ({self.usage})' if self.args else ''}, got {' '.join(args)!r}")
        for arg, value in zip(self.args, args, strict=False):
            if arg.kind == "choice" and value not in arg.choices:
                raise CommandRejected(f"{self.name}: the argument must be {' or '.join(map(repr, arg.choices))}, "
                                      f"got {value!r}")
        return tuple(args)

    def describe(self) -> dict[str, Any]:
        """Plain data for views and remote clients."""
        return {"name": self.name, "label": self.label, "key": self.key, "description": self.description,
                "args": [arg.describe() for arg in self.args], "usage": self.usage, "confirm": self.confirm,
                "while_paused": self.while_paused, "when": self.when}


@dataclass
class CommandSet:
    """The commands of one run, by name (built-ins first, then hooks' in registration order)."""

    commands: dict[str, Command] = field(default_factory=dict)

    def add(self, command: Command) -> None:
        if command.name in self.commands and self.commands[command.name] is not command:
            raise ValueError(f"two commands are named {command.name!r}; hook commands need unique names")
        keys = {c.key: c.name for c in self.commands.values() if c.key and c.name != command.name}
        if command.key and command.key in keys and not _pair(keys[command.key], command):
            raise ValueError(f"command {command.name!r} wants key {command.key!r}, which {keys[command.key]!r} "
                             "already has; choose another key (or none)")
        self.commands[command.name] = command

    def get(self, name: str) -> Command | None:
        return self.commands.get(name)

    def describe(self) -> list[dict[str, Any]]:
        return [c.describe() for c in self.commands.values()]

    def __iter__(self):  # noqa: ANN204 - an iterator of commands
        return iter(self.commands.values())

    def __contains__(self, name: object) -> bool:
        return name in self.commands

    def __len__(self) -> int:
        return len(self.commands)


def _pair(other: str, command: Command) -> bool:
    # pause and continue share a key: each is offered in the state the other is not.
    return {other, command.name} == {PAUSE, CONTINUE}


# --- built-in commands ------------------------------------------------------------------
def _val(run: RunContext) -> str:
    if run.val_loop is None:
        raise CommandRejected("this run has no validation (val_dataloader, val_evaluator and val_cfg are not set)")
    metrics = run.val_loop.run()
    return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def _save(run: RunContext) -> str:
    path = run.checkpointer.save_now("command 'save'")
    return f"saved {path}"


def _resume(run: RunContext, which: str, *trust: str) -> str:
    from cockpit.checkpoint import check_cockpit_checkpoint, load_checkpoint

    # Trust is given per command, never inherited from --trust-checkpoint at start: a file that
    # needs arbitrary pickles loads only when this very request says so (and the channel refuses
    # that from a TCP client).
    trusted = TRUST in trust
    try:
        path = run.checkpointer.resolve(which)
        # Read and check the whole file before touching the live run: a bad file changes nothing.
        checkpoint = check_cockpit_checkpoint(load_checkpoint(path, trusted=trusted), path)
        before = run.iter
        run.resume(path, checkpoint=checkpoint)  # checks the fit before it changes anything
    except CheckpointError as error:
        message = str(error)
        if "--trust-checkpoint" in message:
            message += f"; to load it anyway from this machine, send: resume {which} {TRUST}"
        raise CommandRejected(message) from None
    run.train_loop.jump()
    return f"resumed from {path.name}: iter {before} -> {run.iter} (epoch {run.epoch})"


def _pause(run: RunContext) -> str:
    if run.steering.paused:
        raise CommandRejected("the run is already paused")
    run.steering.set_paused(True)
    return f"paused at iter {run.iter}"


def _continue(run: RunContext) -> str:
    if not run.steering.paused:
        raise CommandRejected("the run is not paused")
    run.steering.set_paused(False)
    return f"continuing from iter {run.iter}"


def _stop(run: RunContext, *args: str) -> str:
    save = STOP_WITHOUT_SAVING not in args
    run.steering.request_stop("command 'stop'", save=save)
    return "stopping after this iteration" + (" (checkpoint saved)" if save else " (no checkpoint)")


LR_HELP = "a learning rate (0.01), or a factor (*0.5) that scales it"


def parse_lr(args: Sequence[str]) -> tuple[str]:
    """``set``'s one argument, normalised: ``0.01``/``lr=0.01`` -> ``lr=0.01``; ``*0.5``, ``x0.5``,
    ``×0.5``, ``lr*=0.5`` -> ``lr*=0.5``.
    """
    if len(args) != 1:
        raise CommandRejected(f"set takes one argument: {LR_HELP}")
    text = args[0].replace(" ", "")
    operator = "="
    if text.startswith("lr"):
        key, found, value = text.partition("*=")
        if not found:
            key, _, value = text.partition("=")
        else:
            operator = "*="
        if key != "lr":
            raise CommandRejected(f"cannot set {key!r}; only the learning rate can be set ({LR_HELP})")
    elif text[:1] in ("*", "x", "×"):
        operator, value = "*=", text[1:]
    elif "=" in text:
        raise CommandRejected(f"cannot set {text.partition('=')[0]!r}; only the learning rate can be set ({LR_HELP})")
    else:
        value = text
    try:
        number = float(value)
    except ValueError:
        raise CommandRejected(f"{value!r} is not a number; {LR_HELP}") from None
    if not math.isfinite(number) or number < 0:
        raise CommandRejected(f"the learning rate must be a finite number >= 0, got {value}")
    return (f"lr{operator}{value}",)


def _set(run: RunContext, assignment: str) -> str:
    """Set the learning rate now, and scale the schedules by the same factor.

    A scheduler would otherwise overwrite the new value at its next step (or, for a warm-up,
    keep multiplying it). Scaling each scheduler's base values (and ``initial_lr``) by
    new / old makes the schedule continue from the new value: the same shape, scaled.
    """
    if run.optim_wrapper is None:
        raise CommandRejected("this run has no optimizer")
    (normalised,) = parse_lr([assignment])
    scale = "*=" in normalised
    number = float(normalised.partition("=")[2])
    groups = run.optim_wrapper.param_groups
    before = [group["lr"] for group in groups]
    after = [lr * number if scale else number for lr in before]
    import torch  # here, not at the top: views import the command table and must not load torch

    for group, lr in zip(groups, after, strict=True):
        # A value the parameters' dtype cannot hold overflows at the next step and ends the run.
        for dtype in {p.dtype for p in group["params"] if p.is_floating_point()}:
            if lr > torch.finfo(dtype).max or (lr > 0 and lr < torch.finfo(dtype).tiny):
                raise CommandRejected(f"lr {lr:g} cannot be held by the {str(dtype).removeprefix('torch.')} "
                                      f"parameters (range {torch.finfo(dtype).tiny:g} to {torch.finfo(dtype).max:g})")
    factors = [new / old if old > 0 else None for old, new in zip(before, after, strict=True)]
    if run.param_schedulers and None in factors:
        raise CommandRejected("the learning rate is 0 now, so the schedule cannot be scaled to a new value; "
                              "wait for the scheduler to raise it, or change the config")
    for index, group in enumerate(groups):
        group["lr"] = after[index]
        if factors[index] is not None and "initial_lr" in group:
            group["initial_lr"] *= factors[index]
    for scheduler in run.param_schedulers:
        torch_scheduler = getattr(scheduler, "scheduler", scheduler)
        if hasattr(torch_scheduler, "base_lrs"):
            torch_scheduler.base_lrs = [base * factor for base, factor in zip(torch_scheduler.base_lrs, factors,
                                                                              strict=True)]
    run.message_hub.update_info("lr_override", {"at_iter": run.iter, "assignment": normalised})
    run.message_hub.add_marker("lr", run.iter, f"lr {before[0]:.4g} -> {after[0]:.4g}")
    message = f"lr {', '.join(f'{b:.4g}' for b in before)} -> {', '.join(f'{a:.4g}' for a in after)}"
    if run.param_schedulers and factors[0] != 1:
        message += f"; the schedule is scaled x{factors[0]:.4g} and continues from the new value"
    return message


def builtin_commands() -> list[Command]:
    """The commands every run understands."""
    checkpoint = Arg("checkpoint", "a checkpoint name or path, 'latest' or 'best'", kind="checkpoint")
    return [
        Command(VAL, "run validation now (mid-epoch too)", _val, label="Validate", key="v"),
        Command(SAVE, "save a resumable checkpoint now", _save, label="Save checkpoint", key="s"),
        Command(RESUME, "load a checkpoint into the live run and continue from it", _resume, label="Resume…",
                key="r", args=(checkpoint, Arg(TRUST, "load a file that needs arbitrary pickles (only one you "
                                                      "trust; refused over TCP)", kind="choice", choices=(TRUST,),
                                                  optional=True)),
                confirm="Resume from {0}? Training continues from that checkpoint's position."),
        Command(PAUSE, "pause training (the process and its memory stay)", _pause, label="Pause", key="p",
                when="running"),
        Command(CONTINUE, "continue a paused run", _continue, label="Continue", key="p", when="paused"),
        Command(STOP, "stop after this iteration, saving a checkpoint ('stop nosave' skips the save)", _stop,
                label="Stop", args=(Arg("nosave", "skip the final checkpoint", kind="choice", choices=(STOP_WITHOUT_SAVING,),
                                        optional=True),),
                confirm="Stop the run? It finishes this iteration and saves a checkpoint first."),
        Command(SET, "set the learning rate of every parameter group", _set, label="Set learning rate…", key="l",
                args=(Arg("lr", LR_HELP),), parse=parse_lr),
    ]
