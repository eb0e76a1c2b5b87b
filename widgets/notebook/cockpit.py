"""``Cockpit``: watch and steer a training run from a Jupyter notebook.

    from cockpit.widgets.notebook import Cockpit

    cockpit = Cockpit.from_cfg("digits.py", cfg_options={"train_cfg.max_epochs": 5}, work_dir="work_dirs/nb")
    cockpit.train()      # trains in a background thread and returns; the cell shows the live widget
    cockpit.save()       # what the buttons do, from Python; returns the command's outcome
    cockpit.wait()       # blocks until the run ends
    cockpit.hub.get_scalar("val/accuracy/top1").current()

    Cockpit.attach("work_dirs/digits/20261121_020410")   # a run started with `cockpit run` elsewhere

The widget talks to the run only through a ``RunClient``, in-process too (the
runner serves its hub and command queue while it trains), so it shows and
steers a run in this kernel exactly as one in a terminal. Nothing is global:
each cockpit has its own runner, connection and threads.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cockpit.widgets.notebook.follower import Follower
from cockpit.widgets.notebook.link import RunLink
from cockpit.widgets.notebook.view import CockpitView

from cockpit import commands
from cockpit.channel.auth import CONNECTION_FILE, ConnectionError_, read_connection_file
from cockpit.channel.client import RunClient
from cockpit.config import Config
from cockpit.events import Status, is_ended
from cockpit.runner import Runner
from cockpit.viewstate import RunState


class Cockpit:
    """A run and its live widget.

    Give a ``runner`` to train in this kernel (``train()`` starts it), or a ``client`` to
    show a run that trains elsewhere (``Cockpit.attach`` makes one).

    Args:
        runner: the run to train here; it is served to the widget while it trains.
        client: a connection to a run started elsewhere.
        refresh_interval: the least seconds between two redraws of the widget.
        max_points: the most points plotted per series (long runs are downsampled).
    """

    def __init__(self, runner: Runner | None = None, *, client: RunClient | None = None,
                 refresh_interval: float = 0.25, max_points: int = 1200) -> None:
        if (runner is None) == (client is None):
            raise ValueError("give a Runner to train here, or a RunClient (Cockpit.attach) to watch a run")
        self._runner = runner
        self.refresh_interval = refresh_interval
        self.state = RunState()
        self.error: BaseException | None = None
        self._train_thread: threading.Thread | None = None
        self._follower: Follower | None = None
        self.view = CockpitView(self._send, on_close=self._stop_following, max_points=max_points)
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
                 **runner_options: Any) -> Cockpit:
        """A cockpit for a new run built from a config file (or a config dict).

        Args:
            cfg: the config file, or a config dict.
            cfg_options: overrides, as ``['train_cfg.max_epochs=3']`` or ``{'train_cfg.max_epochs': 3}``.
            work_dir: where checkpoints and run folders go (replaces the config's).
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
                   max_points=max_points)

    @classmethod
    def attach(cls, run: str | os.PathLike | None = None, *, root: str | os.PathLike = "work_dirs",
               timeout: float = 5.0, refresh_interval: float = 0.25, max_points: int = 1200) -> Cockpit:
        """Show and steer a run that trains elsewhere (``cockpit run`` in a terminal, say).

        Args:
            run: a run folder, its connection file, or a folder of runs (its newest live one).
            root: where to look when ``run`` is not given.
            timeout: seconds to wait for the run's answers.

        Raises:
            ConnectionError_: there is no live run to attach to.
        """
        client = RunClient.connect(run, root=root, timeout=timeout)
        return cls(client=client, refresh_interval=refresh_interval, max_points=max_points)

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
        self._start_following(self._connect_in_process, alive=self._train_thread.is_alive,
                              last_snapshot=self._last_snapshot)
        return self

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ended and the widget shows its end; returns the final status.

        Raises:
            Exception: whatever ended an in-process run with an error.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._train_thread is not None:
            self._train_thread.join(timeout)
        if self._follower is not None:
            self._follower.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self.error is not None:
            raise self.error
        return self.state.status

    def close(self) -> None:
        """Stop updating and close the widget (an in-process run goes on training)."""
        self.view.close()

    # --- commands ------------------------------------------------------------------------------
    def command(self, name: str, *args: str, wait: bool = True, timeout: float = 300.0) -> dict[str, Any]:
        """Send a command (as ``cockpit ctl`` would) and return its outcome.

        Returns:
            ``{'name', 'args', 'done', 'outcome', 'message', ...}``; ``outcome`` is ``applied``,
            ``rejected`` or ``failed`` once done, empty when ``wait`` is False.
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
            self.view.controls.show_outcome(entry)
        return entry

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
        self.command(name, *args, wait=False)

    def _train(self) -> None:
        try:
            self._runner.train()
        except BaseException as error:  # noqa: BLE001 - shown in the widget, raised again by wait()
            self.error = error

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
            if not self._train_thread.is_alive():
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

    def _stop_following(self) -> None:
        if self._follower is not None:
            self._follower.stop()
