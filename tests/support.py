"""What the tests share: waiting, free ports, a tiny config, hooks and the config a child run trains from.

``pytest`` puts this folder on ``sys.path`` (``pythonpath`` in pyproject.toml), so a test writes
``from support import wait_for``. A child ``cockpit run`` process imports this module too (its config
names ``type='support.SlowHook'``): ``child_env()`` puts the folder on the child's PYTHONPATH. So the
module imports nothing from pytest and does nothing when imported.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from toys import ToyData, ToyNet

from cockpit import Hook
from cockpit.commands import Command

if TYPE_CHECKING:
    from cockpit import Runner

TESTS_DIR = Path(__file__).resolve().parent

__all__ = [
    "TESTS_DIR", "NoteHook", "SlowHook", "ToyData", "ToyNet", "child_env", "free_port", "free_port_pair",
    "tiny_cfg", "wait_for", "write_child_config",
]

T = TypeVar("T")


# --- waiting ----------------------------------------------------------------------------------------
def wait_for(condition: Callable[[], T], timeout: float = 60.0, what: str = "the condition",
             interval: float = 0.02, show: Callable[[], str] | None = None) -> T:
    """Poll ``condition()`` until it returns something truthy, and return that.

    Args:
        condition: called every ``interval`` seconds; it may raise to fail at once (a process that died).
        timeout: seconds before giving up.
        what: what is awaited, for the failure message.
        interval: seconds between two calls.
        show: called on a timeout; its text (a screen, a log) is added to the failure message.

    Raises:
        AssertionError: ``condition()`` stayed falsy for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout}s waiting for {what}"
            if show is not None:
                message += "\n" + show()
            raise AssertionError(message)
        time.sleep(interval)


# --- ports ------------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port_pair() -> int:
    """A port P with P and P + 1 both free on 127.0.0.1 (a run's control and event sockets)."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free pair of ports")


# --- an in-process run --------------------------------------------------------------------------------
def tiny_cfg(work_dir: Path | str, **overrides: Any) -> dict[str, Any]:
    """A complete epoch-based config (2 epochs x 8 iterations, validation each epoch).

    Keys in ``overrides`` replace the defaults; a value of None removes the key.
    """
    cfg: dict[str, Any] = dict(
        model=dict(type=ToyNet),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=dict(type=ToyData, size=64), sampler=dict(type="DefaultSampler", shuffle=True),
                              batch_size=8),
        val_dataloader=dict(dataset=dict(type=ToyData, size=32, seed=1),
                            sampler=dict(type="DefaultSampler", shuffle=False), batch_size=16),
        val_evaluator=dict(type="Accuracy"),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        default_hooks=dict(logger=dict(type="LoggerHook", interval=4, backends=("json",))),
        randomness=dict(seed=0),
    )
    for key, value in overrides.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    return cfg


# --- hooks a child run's config names -------------------------------------------------------------------
class SlowHook(Hook):
    """Holds a run back so a test can act on it while it trains.

    A test lets the run go by creating a file: ``gate`` (the run stands still until it exists) or
    ``release`` (the run trains at ``seconds`` an iteration until it exists, then at full speed).

    Args:
        seconds: sleep after each training iteration (until ``release`` exists, if given).
        gate: a file; each iteration waits for it to exist before the run goes on.
        release: a file; once it exists the hook no longer sleeps.
    """

    def __init__(self, seconds: float = 0.0, gate: str | None = None, release: str | None = None) -> None:
        self.seconds = seconds
        self.gate = gate
        self.release = release

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if self.gate is not None:
            while not os.path.exists(self.gate):
                time.sleep(0.02)
        if self.seconds and (self.release is None or not os.path.exists(self.release)):
            time.sleep(self.seconds)


class NoteHook(Hook):
    """Offers a command of its own, ``note <text>``, which puts the text in the run info."""

    def commands(self) -> list[Command]:
        return [Command("note", "put a note in the run info", self.note, args=("text",))]

    def note(self, runner: Runner, text: str) -> str:
        runner.message_hub.update_info("note", text)
        return f"noted {text}"


# --- a child run ----------------------------------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one with tests/ on PYTHONPATH, plus ``extra``.

    One torch thread per child, so the children a test starts together do not starve each other on
    a small machine; no ``TMUX``, so a child inside pytest-in-tmux does not talk to that terminal.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.pop("TMUX", None)
    return env


CHILD_CONFIG = """\
# Written by tests/support.py (write_child_config); a child run needs tests/ on PYTHONPATH (child_env()).
from toys import ToyData, ToyNet

model = dict(type=ToyNet, dropout={dropout})
train_dataloader = dict(dataset=dict(type=ToyData, size={train_size}),
                        sampler=dict(type='DefaultSampler', shuffle=True), batch_size=8)
{validation}optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum={momentum}))
train_cfg = dict(by_epoch=True, max_epochs={max_epochs}{val_interval})
default_hooks = dict(logger=dict(type='LoggerHook', interval={log_interval}, backends=('json',)),
                     checkpoint=dict(type='CheckpointHook', interval={checkpoint_interval},
                                     max_keep_ckpts={max_keep_ckpts}))
custom_hooks = {custom_hooks!r}
randomness = dict(seed={seed}, deterministic={deterministic})
"""

VALIDATION = """\
val_dataloader = dict(dataset=dict(type=ToyData, size=32, seed=1),
                      sampler=dict(type='DefaultSampler', shuffle=False), batch_size=16)
val_evaluator = dict(type='Accuracy')
val_cfg = dict()
"""


def write_child_config(
    folder: Path | str,
    *,
    name: str = "cfg.py",
    max_epochs: int = 2,
    seconds: float = 0.0,
    gate: Path | str | None = None,
    release: Path | str | None = None,
    train_size: int = 64,
    dropout: float = 0.0,
    momentum: float = 0.0,
    val_interval: int | None = 1,
    log_interval: int = 4,
    checkpoint_interval: int = 1,
    max_keep_ckpts: int = -1,
    seed: int = 0,
    deterministic: bool = False,
    custom_hooks: Sequence[dict[str, Any]] = (),
    body_extra: str = "",
) -> Path:
    """Write ``folder/name``: a config a child ``cockpit run`` trains from, and return its path.

    The toy problem of tests/toys.py (8 samples a batch, so ``train_size / 8`` iterations an epoch),
    plain SGD with lr 0.1, a JSON logger and a checkpoint hook. The child needs ``child_env()``.

    Args:
        folder: where the file goes (created if missing).
        name: the file's name (a run names its folders after it).
        max_epochs: the run's length.
        seconds: sleep after each iteration (a ``SlowHook``), so the run lasts while a test acts.
        gate: the run stands still until this file exists (``SlowHook(gate=...)``).
        release: once this file exists, ``seconds`` no longer applies (``SlowHook(release=...)``).
        train_size: samples in the training set.
        dropout: the model's dropout (non-zero makes resuming depend on the saved RNG state too).
        momentum: SGD momentum (non-zero gives the optimizer a state to save).
        val_interval: validate every this many epochs (and after the last); None: no validation set.
        log_interval: the logger's interval in iterations.
        checkpoint_interval: save every this many epochs (the last epoch is always saved).
        max_keep_ckpts: periodic checkpoints to keep; -1 keeps all.
        seed: the run's seed.
        deterministic: make torch deterministic.
        custom_hooks: more hook configs, after the ``SlowHook`` (``dict(type='support.NoteHook')``).
        body_extra: Python source appended to the config, to define what no option covers: it may
            replace a setting, or define a hook class and ``custom_hooks.append(dict(type=It))``.
    """
    hooks = list(custom_hooks)
    if seconds or gate is not None:
        slow: dict[str, Any] = dict(type="support.SlowHook", seconds=seconds)
        if gate is not None:
            slow["gate"] = str(gate)
        if release is not None:
            slow["release"] = str(release)
        hooks.insert(0, slow)
    text = CHILD_CONFIG.format(
        dropout=dropout, train_size=train_size, validation=VALIDATION if val_interval is not None else "",
        momentum=momentum, max_epochs=max_epochs,
        val_interval=f", val_interval={val_interval}" if val_interval is not None else "",
        log_interval=log_interval, checkpoint_interval=checkpoint_interval, max_keep_ckpts=max_keep_ckpts,
        custom_hooks=hooks, seed=seed, deterministic=deterministic)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text + textwrap.dedent(body_extra))
    return path
