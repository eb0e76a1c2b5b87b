"""``Follower``: the thread that keeps a cockpit current.

It connects (waiting for an in-process run to start serving), takes a
snapshot, then polls the event stream a few times per second: events go into
the ``RunState`` as they come, and the widget is redrawn at most every
``interval`` seconds. It stops after a final redraw when the run ends, or when
it is told to (the widget was closed).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from cockpit.widgets.notebook.link import RunLink

from cockpit.channel.auth import ConnectionError_
from cockpit.events import Status
from cockpit.viewstate import RunState

POLL_SECONDS = 0.05
ALIVE_CHECK_SECONDS = 1.0


class Follower:
    """Follows one run into one ``RunState`` and redraws a view from it.

    Args:
        connect: returns the link to the run, or None when the run ended before it could be
            reached; it may block, and should return None soon after ``stopping`` is set.
        state: the state to keep.
        redraw: ``redraw(state)`` draws the state (called from this thread only).
        interval: the least seconds between two redraws.
        alive: whether the run may still change (an in-process training thread, a process).
        last_snapshot: the run's final state when the stream could not deliver it (in-process
            runs read it from their hub), or None.
        on_connect: called with the link once connected.
        on_end: called once following ended, before the final redraw.
    """

    def __init__(self, connect: Callable[[], RunLink | None], state: RunState, redraw: Callable[[RunState], None],
                 interval: float = 0.25, alive: Callable[[], bool] = lambda: True,
                 last_snapshot: Callable[[], dict[str, Any] | None] | None = None,
                 on_connect: Callable[[RunLink], None] | None = None,
                 on_end: Callable[[], None] | None = None) -> None:
        self.connect = connect
        self.state = state
        self.redraw = redraw
        self.interval = interval
        self.alive = alive
        self.last_snapshot = last_snapshot
        self.on_connect = on_connect
        self.on_end = on_end
        self.link: RunLink | None = None
        self.error: BaseException | None = None
        self.redraws = 0
        self.stopping = threading.Event()
        self.connected = threading.Event()  # set once connected, or once it is clear it never will be
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cockpit-follower", daemon=True)

    def start(self) -> Follower:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following (the run goes on) and wait for the thread to end."""
        self.stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until following ended; False on timeout."""
        return self.done.wait(timeout)

    # --- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            link = self.connect()
            if link is not None and not self.stopping.is_set():
                self.link = link
                if self.on_connect is not None:
                    self.on_connect(link)
                self.connected.set()
                self.state.load_snapshot(link.snapshot())
                self._draw()
                self._follow(link)
        except ConnectionError_ as error:  # also StaleConnectionError: the run's process is gone
            self.error = error
        except Exception as error:  # noqa: BLE001 - shown in the widget instead of lost in a thread
            self.error = error
            traceback.print_exc()
        finally:
            self.connected.set()
            self._finish()

    def _follow(self, link: RunLink) -> None:
        state = self.state
        last_draw = time.monotonic()
        last_alive_check = last_draw
        snapshots = state.snapshots
        while not self.stopping.is_set():
            state.receive(link.poll(POLL_SECONDS))
            if state.needs_snapshot:
                state.load_snapshot(link.snapshot())
            if state.snapshots != snapshots:
                snapshots = state.snapshots
                self._settle_commands(link)
            if state.ended:
                self._drain(link)
                return
            now = time.monotonic()
            if now - last_alive_check >= ALIVE_CHECK_SECONDS:
                last_alive_check = now
                self._settle_commands(link)
                if not self.alive():
                    self._drain(link)
                    return
            if state.changed and now - last_draw >= self.interval:
                self._draw()
                last_draw = now

    def _settle_commands(self, link: RunLink) -> None:
        """Ask for the outcome of commands still queued here.

        A snapshot covers the events before it, and command outcomes are not part of a
        snapshot: an outcome that happened just before a re-sync is only learned by asking.
        """
        for command_id in self.state.pending_requests():
            try:
                answer = link.outcome(command_id)
            except ConnectionError_:
                continue  # the run forgot it (it keeps the recent ones) or is ending
            if answer.get("done"):
                self.state.record_outcome(command_id, answer["name"], answer["outcome"], answer["message"])

    def _drain(self, link: RunLink) -> None:
        """Take what is left of the stream after the end (cleanup hooks still log)."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            events = link.poll(0.15)
            if not events:
                return
            self.state.receive(events)

    def _finish(self) -> None:
        state = self.state
        try:
            if not state.ended and not self.stopping.is_set() and self.last_snapshot is not None:
                snapshot = self.last_snapshot()
                if snapshot is not None:
                    state.load_snapshot(snapshot)
            if not state.ended and not self.stopping.is_set() and not self.alive():
                state.set_status(Status.DIED, "the run's process is gone")
            if self.error is not None and not state.ended:
                state.set_status(state.status, f"lost the run: {self.error}")
            if self.link is not None:
                self.link.close()
            if self.on_end is not None:
                self.on_end()
            if not self.stopping.is_set():
                self._draw()
        finally:
            self.done.set()

    def _draw(self) -> None:
        self.redraws += 1
        self.redraw(self.state)
