"""Views that need no UI package: plain progress lines from a run's event stream.

``PlainView`` is what ``cockpit run`` and ``cockpit attach`` show when the
terminal UI is not used: the run's log lines, command outcomes and status
changes, as they happen, read through ``RunClient`` like any other view.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from cockpit.channel.auth import ConnectionError_, StaleConnectionError
from cockpit.channel.client import RunClient

ENDED = ("finished", "failed", "stopped")


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
        self.status = ""
        self.detail = ""
        self._interrupts = 0
        self._stop_sent = threading.Event()

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def _show(self, event: dict[str, Any]) -> None:
        kind = event["t"]
        if kind == "LogRecorded":
            self._print(format_log(event["time"], event["message"]))
        elif kind == "StatusChanged":
            self.status, self.detail = event["status"], event.get("detail", "")
        elif kind == "Snapshot":
            snapshot = event["snapshot"]
            self.status, self.detail = snapshot["status"], snapshot.get("status_detail", "")

    def _interrupt(self, signum: int, frame: Any) -> None:
        self._interrupts += 1
        if self.on_interrupt == "stop" and self._interrupts == 1:
            self._print("cockpit: asking the run to stop (it saves a checkpoint first); Ctrl-C again to leave it")
            self._stop_sent.set()
        else:
            raise KeyboardInterrupt

    def run(self) -> str:
        """Follow the run; returns its final status, or ``'detached'``."""
        snapshot = self.client.snapshot(max_points=1)
        self.status, self.detail = snapshot["status"], snapshot.get("status_detail", "")
        for when, _, message in snapshot["logs"][-20:]:
            self._print(format_log(when, message))
        previous = signal.signal(signal.SIGINT, self._interrupt) if threading.current_thread() is threading.main_thread() else None
        try:
            while self.status not in ENDED:
                if self._stop_sent.is_set():
                    self._stop_sent.clear()
                    self.client.command("stop", wait=False)
                for event in self.client.poll_events(timeout=0.2):
                    self._show(event)
                if self.alive is not None and not self.alive():
                    for event in self.client.poll_events(timeout=0.2):
                        self._show(event)
                    break
        except KeyboardInterrupt:
            self._print(f"cockpit: detached; the run goes on. Attach again with: cockpit attach "
                        f"{self.client.info.get('run_dir', '')}")
            return "detached"
        except StaleConnectionError:
            self.status = self.status if self.status in ENDED else "died"
        except ConnectionError_ as error:
            self._print(f"cockpit: lost the run: {error}")
            return "lost"
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.status
