"""``Cockpit``: watch and steer a training run from a Jupyter notebook.

    from cockpit.widgets.notebook import Cockpit

    cockpit = Cockpit.from_cfg("digits.py", cfg_options={"train_cfg.max_epochs": 5}, work_dir="work_dirs/nb")
    cockpit.train()      # trains in a background thread and returns; the cell shows the live widget
    cockpit.save()       # what the buttons do, from Python; returns the command's outcome
    cockpit.wait()       # blocks until the run ends; interrupting the kernel here saves and stops the run
    cockpit.hub.get_scalar("val/accuracy/top1").current()

    Cockpit.attach("work_dirs/digits/20261121_020410")   # a run started with `cockpit run` elsewhere

The widget talks to the run only through a ``RunClient``, in-process too (the
runner serves its hub and command queue while it trains), so it shows and
steers a run in this kernel exactly as one in a terminal. Nothing is global:
each cockpit has its own runner, connection and threads.

A busy kernel does not hold the run hostage. The run trains in a thread, so
the kernel is free for other cells. A click made while another cell runs
waits for that cell, and the widget says so; with ``clicks_while_busy=True``
the clicks are handled in a kernel subshell of their own (``ClickLane``,
ipykernel 7) and act at once. ``wait()`` refuses to block on a paused run
that nothing could continue, and an interrupt of ``wait()`` saves and stops
the run the way Ctrl-C does in a terminal.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cockpit.widgets.notebook.controls import command_warnings
from cockpit.widgets.notebook.follower import Follower
from cockpit.widgets.notebook.lane import NOT_IN_A_KERNEL, ClickLane
from cockpit.widgets.notebook.link import RunLink
from cockpit.widgets.notebook.overview import config_facts
from cockpit.widgets.notebook.view import CockpitView

from cockpit import commands
from cockpit.channel.auth import CONNECTION_FILE, ConnectionError_, read_connection_file
from cockpit.channel.client import RunClient
from cockpit.config import Config
from cockpit.events import Status, is_ended
from cockpit.runner import Runner
from cockpit.viewstate import RunState

#: A click that waited this many seconds for a busy kernel is pointed out.
LATE_CLICK_SECONDS = 1.0
#: Seconds ``wait()`` gives an interrupted run to save its checkpoint and stop.
STOP_AFTER_INTERRUPT_TIMEOUT = 120.0


class RunPausedError(RuntimeError):
    """``wait()`` was asked to wait for a paused run that nothing in this kernel could continue."""


class Cockpit:
    """A run and its live widget.

    Give a ``runner`` to train in this kernel (``train()`` starts it), or a ``client`` to
    show a run that trains elsewhere (``Cockpit.attach`` makes one).

    Args:
        runner: the run to train here; it is served to the widget while it trains.
        client: a connection to a run started elsewhere.
        refresh_interval: the least seconds between two redraws of the widget.
        max_points: the most points plotted per series (long runs are downsampled).
        clicks_while_busy: handle the widget's clicks in a kernel subshell of their own, so they
            act while another cell runs (ipykernel 7; see ``ClickLane`` for its one known snag).
    """

    def __init__(self, runner: Runner | None = None, *, client: RunClient | None = None,
                 refresh_interval: float = 0.25, max_points: int = 1200, clicks_while_busy: bool = False) -> None:
        if (runner is None) == (client is None):
            raise ValueError("give a Runner to train here, or a RunClient (Cockpit.attach) to watch a run")
        self._runner = runner
        self.refresh_interval = refresh_interval
        self.state = RunState()
        self.error: BaseException | None = None
        self._train_thread: threading.Thread | None = None
        # Set when training ended. Not ``Thread.is_alive()``: a ``join()`` cut short by a
        # KeyboardInterrupt can mark a running thread as ended (CPython 3.11), which made the
        # widget say "died" about a run that was only paused.
        self._trained = threading.Event()
        self._follower: Follower | None = None
        self.lane = ClickLane(wanted=clicks_while_busy)
        self.view = CockpitView(self._send, on_close=self._close_parts, max_points=max_points,
                                route=self.lane.route, facts=config_facts(runner.cfg if runner is not None else None))
        if not self.lane.open and self.lane.reason != NOT_IN_A_KERNEL:
            self.view.controls.show_hint("While another cell runs, clicks wait for it to end.")
        if runner is not None:
            # Before training the widget already shows what the run offers (its commands, its hooks), all off.
            self.state.load_snapshot(runner.message_hub.snapshot())
            self.state.set_status(Status.CREATED, "call train() to start")
            self.state.info["experiment_name"] = runner.experiment_name
            self.view.refresh(self.state)
        else:
            link = RunLink(client)
            self._start_following(lambda: link, alive=link.alive)

    # --- making one --------------------------------------------------------------------------
    @classmethod
    def from_cfg(cls, cfg: str | os.PathLike | Mapping, *, cfg_options: Iterable[str] | Mapping | None = None,
                 work_dir: str | os.PathLike | None = None, refresh_interval: float = 0.25, max_points: int = 1200,
                 clicks_while_busy: bool = False, **runner_options: Any) -> Cockpit:
        """A cockpit for a new run built from a config file (or a config dict).

        Args:
            cfg: the config file, or a config dict.
            cfg_options: overrides, as ``['train_cfg.max_epochs=3']`` or ``{'train_cfg.max_epochs': 3}``.
            work_dir: where checkpoints and run folders go (replaces the config's).
            clicks_while_busy: see ``Cockpit``.
            runner_options: passed to ``Runner.from_cfg`` (the log goes to the widget, not the cell,
                unless ``log_to_console=True``).
        """
        if isinstance(cfg, (str, os.PathLike)):
            config = Config.fromfile(cfg, cfg_options)
        else:
            config = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(copy.deepcopy(dict(cfg)))
            if cfg_options:
                config.merge_from_options(cfg_options)
        if work_dir is not None:
            config["work_dir"] = str(work_dir)
        runner_options.setdefault("log_to_console", False)
        runner_options.setdefault("serve", True)
        return cls(Runner.from_cfg(config, **runner_options), refresh_interval=refresh_interval,
                   max_points=max_points, clicks_while_busy=clicks_while_busy)

    @classmethod
    def attach(cls, run: str | os.PathLike | None = None, *, root: str | os.PathLike = "work_dirs",
               timeout: float = 5.0, refresh_interval: float = 0.25, max_points: int = 1200,
               clicks_while_busy: bool = False) -> Cockpit:
        """Show and steer a run that trains elsewhere (``cockpit run`` in a terminal, say).

        Args:
            run: a run folder, its connection file, or a folder of runs (its newest live one).
            root: where to look when ``run`` is not given.
            timeout: seconds to wait for the run's answers.

        Raises:
            ConnectionError_: there is no live run to attach to.
        """
        client = RunClient.connect(run, root=root, timeout=timeout)
        return cls(client=client, refresh_interval=refresh_interval, max_points=max_points,
                   clicks_while_busy=clicks_while_busy)

    @staticmethod
    def compare(runs: Iterable[str | os.PathLike], keys: Sequence[str] | None = None,
                refresh_seconds: float | None = 2.0) -> Any:
        """Overlay several runs' scalars (run folders, or folders of runs) in one plotly widget:
        one panel per key, one colour per run, a fork named with its parent; live runs' curves grow
        every ``refresh_seconds`` (None: a still picture). See ``compare.compare``."""
        from cockpit.widgets.notebook.compare import compare

        return compare(runs, keys, refresh_seconds)

    # --- what it holds ------------------------------------------------------------------------
    @property
    def runner(self) -> Runner | None:
        """The runner training in this kernel (None when attached)."""
        return self._runner

    @property
    def model(self) -> Any:
        return self._runner.model if self._runner is not None else None

    @property
    def hub(self) -> Any:
        """The run's ``MessageHub`` (None when attached: read ``state`` instead)."""
        return self._runner.message_hub if self._runner is not None else None

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def run_dir(self) -> Path | None:
        """The run's folder (config dump, log, ``run.json``)."""
        if self._runner is not None:
            return Path(self._runner.log_dir)
        link = self._follower.link if self._follower is not None else None
        return Path(link.info["run_dir"]) if link is not None and "run_dir" in link.info else None

    # --- running -------------------------------------------------------------------------------
    def train(self) -> Cockpit:
        """Start training in a background thread and return at once (the widget shows it)."""
        runner = self._runner
        if runner is None:
            raise RuntimeError("this cockpit is attached to a run that trains elsewhere; it cannot train")
        if self._train_thread is not None:
            raise RuntimeError("this cockpit has trained already; build a new Cockpit for a new run")
        runner.serve = runner.serve or True
        self._train_thread = threading.Thread(target=self._train, name="cockpit-train", daemon=True)
        self._train_thread.start()
        self._start_following(self._connect_in_process, alive=lambda: not self._trained.is_set(),
                              last_snapshot=self._last_snapshot)
        return self

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ended and the widget shows its end; returns the status then.

        While it blocks, the widget's clicks wait for it, unless the cockpit was made with
        ``clicks_while_busy=True`` (then Continue, clicked, ends a pause that began meanwhile).
        Interrupting the kernel here stops a run that trains in this kernel as Ctrl-C does in a
        terminal: it saves a checkpoint, stops, and ``run.json`` says so.

        Args:
            timeout: the most seconds to wait (None: until the run ends).

        Raises:
            RunPausedError: the run is paused (and, while this call blocks, nothing in this kernel
                could continue it): continue or stop it first.
            KeyboardInterrupt: the kernel was interrupted (the run was saved and stopped first).
            Exception: whatever ended an in-process run with an error.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        follower = self._follower
        self._refuse_to_wait_paused()
        try:
            while follower is not None and not follower.join(0.1):
                if not self.lane.open:  # a pause from now on could never be continued
                    self._refuse_to_wait_paused()
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            self._stop_after_interrupt()
            raise
        if self.error is not None:
            raise self.error
        return self.state.status

    def close(self) -> None:
        """Stop updating and close the widget (an in-process run goes on training)."""
        self.view.close()

    def _paused(self) -> bool:
        """Whether the run is paused with nothing on its way to end that (a Stop just clicked, say).

        An in-process run is asked directly: the widget's copy of the status may lag.
        """
        if self.state.pending_requests():
            return False
        if self._runner is not None and self._train_thread is not None:
            return self._runner.steering.paused and not self._trained.is_set()
        return self.state.status == Status.PAUSED and not self.state.ended

    def _refuse_to_wait_paused(self) -> None:
        """Raise ``RunPausedError`` when the run is paused: waiting on it would block for ever."""
        if not self._paused():
            return
        where = f" at iter {self.state.info['iter']}" if "iter" in self.state.info else ""
        raise RunPausedError(
            f"the run is paused{where}, and wait() would block this kernel for ever: "
            "continue it first (cockpit.continue_training(), or the widget's Continue), "
            "or stop it (cockpit.stop())")

    # --- commands ------------------------------------------------------------------------------
    def command(self, name: str, *args: str, wait: bool = True, timeout: float = 300.0) -> dict[str, Any]:
        """Send a command (as ``cockpit ctl`` would) and return its outcome.

        Returns:
            ``{'name', 'args', 'done', 'outcome', 'message', 'warnings', ...}``; ``outcome`` is
            ``applied``, ``rejected`` or ``failed`` once done, empty when ``wait`` is False;
            ``warnings`` lists what the run warned about while applying it (a resumed checkpoint
            without optimizer state, say).
        """
        entry: dict[str, Any] = {"name": name, "args": tuple(args), "done": True, "outcome": "rejected"}
        link = self._ready_link()
        if self.state.ended:
            entry["message"] = f"the run has ended ({self.state.status})"
        elif link is None:
            entry["message"] = "the run is not being served: call train() first"
        else:
            self.view.controls.show_outcome({"name": name, "args": args, "outcome": "sent"})
            try:
                entry = link.command(name, *args, wait=False)
                if not entry.get("done"):
                    # Noted here too: the stream skips the events a re-sync's snapshot covers.
                    self.state.note_request(entry["id"], name, args)
                    if wait:
                        entry = link.wait_for(entry["id"], timeout=timeout)
            except ConnectionError_ as error:
                ended = self.state.ended  # the run ended while the command was on its way
                entry = {**entry, "done": True, "outcome": "rejected" if ended else "failed",
                         "message": f"the run has ended ({self.state.status})" if ended
                         else f"could not reach the run: {error}"}
        if entry.get("done"):
            entry["warnings"] = self._warnings_of(entry)
            self.view.controls.show_outcome(entry)
        return entry

    def _warnings_of(self, entry: dict[str, Any], timeout: float = 5.0) -> list[str]:
        """The warnings the run logged while applying ``entry`` (they come on the event stream,
        before its outcome: wait until the widget has that outcome too)."""
        if entry.get("name") != commands.RESUME:
            return []
        deadline = time.monotonic() + timeout
        while (entry.get("id") in self.state.requests and self.state.requests[entry["id"]]["outcome"] == "queued"
               and not self.state.ended and time.monotonic() < deadline):
            time.sleep(0.02)
        return command_warnings(entry, self.state.logs)

    def validate(self, wait: bool = True) -> dict[str, Any]:
        """Run validation now (mid-epoch too)."""
        return self.command(commands.VAL, wait=wait)

    def save(self, wait: bool = True) -> dict[str, Any]:
        """Save a resumable checkpoint now."""
        return self.command(commands.SAVE, wait=wait)

    def pause(self, wait: bool = True) -> dict[str, Any]:
        """Pause after the current iteration (commands still work while paused)."""
        return self.command(commands.PAUSE, wait=wait)

    def continue_training(self, wait: bool = True) -> dict[str, Any]:
        """Continue a paused run."""
        return self.command(commands.CONTINUE, wait=wait)

    def stop(self, save: bool = True, wait: bool = True) -> dict[str, Any]:
        """Stop after the current iteration, saving a checkpoint first unless ``save=False``."""
        return self.command(commands.STOP, *(() if save else (commands.STOP_WITHOUT_SAVING,)), wait=wait)

    def set_lr(self, value: float | str, wait: bool = True) -> dict[str, Any]:
        """Set the learning rate of every parameter group: ``0.01``, or ``'*0.5'`` to scale it (the run reads it)."""
        return self.command(commands.SET, value if isinstance(value, str) else repr(float(value)), wait=wait)

    def resume(self, checkpoint: str | os.PathLike = "latest", wait: bool = True) -> dict[str, Any]:
        """Load a checkpoint (a path, ``'latest'`` or ``'best'``) into the live run and continue from it."""
        return self.command(commands.RESUME, str(checkpoint), wait=wait)

    # --- display -------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.view._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        name = self.state.info.get("experiment_name") or self.state.name
        return f"<Cockpit {name} {self.state.status}>"

    # --- inside --------------------------------------------------------------------------------
    def _send(self, name: str, *args: str) -> None:
        # A button click: the outcome shows up next to the buttons when the run reports it.
        waited = self.lane.waited()
        if waited >= LATE_CLICK_SECONDS:
            self.view.controls.show_note(f"{' '.join((name, *args))} was clicked {waited:.1f} s before the kernel "
                                         "could take it: another cell was running.")
        self.command(name, *args, wait=False)

    def _train(self) -> None:
        try:
            self._runner.train()
        except BaseException as error:  # noqa: BLE001 - shown in the widget, raised again by wait()
            self.error = error
        finally:
            self._trained.set()

    def _stop_after_interrupt(self) -> None:
        """The kernel was interrupted in ``wait()``: save and stop a run training here, and say so.

        A run attached from elsewhere is left alone (this kernel only watched it). A second
        interrupt gives up waiting for the stop, which still happens at the run's next safe point.
        """
        runner = self._runner
        if runner is None or self._train_thread is None or self._trained.is_set():
            return
        runner.request_stop("the kernel was interrupted", save=True)
        print("cockpit: the kernel was interrupted: saving a checkpoint and stopping the run…", flush=True)
        try:
            self._trained.wait(STOP_AFTER_INTERRUPT_TIMEOUT)
            if self._follower is not None:
                self._follower.join(10.0)
        except KeyboardInterrupt:
            print("cockpit: stopped waiting; the run stops at its next safe point", flush=True)
            return
        print(f"cockpit: the run {self.state.status}; its checkpoint: {self.state.info.get('last_ckpt')}",
              flush=True)

    def _start_following(self, connect: Any, alive: Any, last_snapshot: Any = None) -> None:
        def on_connect(link: RunLink) -> None:
            self.view.connected = True

        def on_end() -> None:
            self.view.connected = False

        self._follower = Follower(connect, self.state, self.view.refresh, interval=self.refresh_interval,
                                  alive=alive, last_snapshot=last_snapshot, on_connect=on_connect, on_end=on_end)
        self._follower.start()

    def _connect_in_process(self) -> RunLink | None:
        """Wait until the runner serves (its connection file appears); None if training ended first."""
        path = Path(self._runner.log_dir) / CONNECTION_FILE
        while not self._follower.stopping.is_set():
            if path.exists():
                try:
                    return RunLink(RunClient(read_connection_file(path)))
                except ConnectionError_:
                    pass  # gone again: the run ended at once
            if self._trained.is_set():
                return None
            time.sleep(0.02)
        return None

    def _last_snapshot(self) -> dict[str, Any]:
        # The stream missed the end (the run ended before the widget could connect, say):
        # the hub is in this process, so its final state is read from it directly.
        snapshot = self._runner.message_hub.snapshot()
        if self.error is not None and not is_ended(snapshot["status"]):
            snapshot["status"] = Status.FAILED.value
            snapshot["status_detail"] = f"{type(self.error).__name__}: {self.error}"
        return snapshot

    def _ready_link(self, timeout: float = 30.0) -> RunLink | None:
        follower = self._follower
        if follower is None:
            return None
        follower.connected.wait(timeout)
        return follower.link

    def _close_parts(self) -> None:
        """The widget was closed: stop following, end the click subshell."""
        if self._follower is not None:
            self._follower.stop()
        self.lane.close()
