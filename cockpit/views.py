"""Views that need no UI package: plain progress lines from a run's event stream.

``PlainView`` is what ``cockpit run`` and ``cockpit attach`` show when the
terminal UI is not used: the run's log lines as they happen, read through
``RunClient`` into a ``RunState`` like any other view.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from cockpit import commands
from cockpit.channel.auth import ConnectionError_, StaleConnectionError
from cockpit.channel.client import RunClient
from cockpit.events import Status, is_ended
from cockpit.viewstate import RunState


def format_log(when: float, message: str) -> str:
    return f"{time.strftime('%m/%d %H:%M:%S', time.localtime(when))} - {message}"


class PlainView:
    """Prints a run's progress until it ends or the user leaves.

    Args:
        client: the connection to the run.
        out: where lines go.
        on_interrupt: what Ctrl-C does: ``'stop'`` asks the run to stop gracefully
            (a second Ctrl-C leaves it stopping and exits), ``'detach'`` leaves the run going.
        alive: returns False when the run's process has exited (the view then ends).
    """

    def __init__(self, client: RunClient, out: TextIO = sys.stdout, on_interrupt: str = "detach",
                 alive: Callable[[], bool] | None = None) -> None:
        self.client = client
        self.out = out
        self.on_interrupt = on_interrupt
        self.alive = alive
        self.state = RunState()
        self._interrupts = 0
        self._stop_sent = threading.Event()

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def detail(self) -> str:
        return self.state.status_detail

    def _show(self, messages: list[dict[str, Any]]) -> None:
        self.state.receive(messages)
        if self.state.needs_snapshot:
            self.state.load_snapshot(self.client.snapshot(max_points=1))
        for when, _, message in self.state.take_logs():
            self._print(format_log(when, message))

    def _interrupt(self, signum: int, frame: Any) -> None:
        self._interrupts += 1
        if self.on_interrupt == "stop" and self._interrupts == 1:
            self._print("cockpit: asking the run to stop (it saves a checkpoint first); Ctrl-C again to leave it")
            self._stop_sent.set()
        else:
            raise KeyboardInterrupt

    def run(self) -> str:
        """Follow the run; returns its final status, or ``'detached'``."""
        self.state.load_snapshot(self.client.snapshot(max_points=1))
        for when, _, message in self.state.take_logs()[-20:]:
            self._print(format_log(when, message))
        previous = signal.signal(signal.SIGINT, self._interrupt) if threading.current_thread() is threading.main_thread() else None
        try:
            while not self.state.ended:
                if self._stop_sent.is_set():
                    self._stop_sent.clear()
                    self.client.command(commands.STOP, wait=False)
                self._show(self.client.poll_events(timeout=0.2))
                if self.alive is not None and not self.alive():
                    self._show(self.client.poll_events(timeout=0.2))
                    break
        except KeyboardInterrupt:
            self._print(f"cockpit: detached; the run goes on. Attach again with: cockpit attach "
                        f"{self.client.info.get('run_dir', '')}")
            return "detached"
        except StaleConnectionError:
            if not is_ended(self.status):
                self.state.set_status(Status.DIED, "the run's process is gone")
        except ConnectionError_ as error:
            self._print(f"cockpit: lost the run: {error}")
            return "lost"
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.status
