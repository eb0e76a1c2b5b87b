"""``RunLink``: one ``RunClient`` shared by the update thread and the buttons.

ZeroMQ sockets must not be used by two threads at once, and a notebook has at
least two: the update thread follows the event stream while button clicks (and
calls like ``cockpit.save()``) arrive in the kernel's main thread. One lock
around every use of the client is enough; each use is short.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from cockpit.channel.auth import ConnectionError_, pid_alive
from cockpit.channel.client import RunClient


class RunLink:
    """Thread-safe access to one run through its ``RunClient``.

    Args:
        client: a connected client; the link closes it.
    """

    def __init__(self, client: RunClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._closed = False

    @property
    def info(self) -> dict[str, Any]:
        """The connection file's content (pid, run folder, experiment name...)."""
        return self.client.info

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._check_open()
            return self.client.snapshot()

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        """The events that arrived, waiting up to ``timeout`` seconds for the first."""
        with self._lock:
            if self._closed:
                return []
            return self.client.poll_events(timeout)

    def command(self, name: str, *args: str, wait: bool = True, timeout: float = 300.0) -> dict[str, Any]:
        """Send a command; with ``wait``, return once it was applied, rejected or failed.

        Returns:
            ``{'id', 'name', 'args', 'done', 'outcome', 'message'}`` as ``RunClient.command``.
        Raises:
            ConnectionError_: the run cannot be reached.
        """
        with self._lock:
            self._check_open()
            answer = self.client.command(name, *args, wait=False)
        return self.wait_for(answer["id"], timeout) if wait and not answer.get("done") else answer

    def wait_for(self, command_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Wait until a command was applied, rejected or failed (or ``timeout`` passed); its answer."""
        deadline = time.monotonic() + timeout
        while True:
            # Each look takes the lock only briefly, so the update thread keeps drawing meanwhile.
            answer = self.outcome(command_id)
            if answer.get("done") or time.monotonic() >= deadline:
                return answer
            time.sleep(0.03)

    def outcome(self, command_id: str) -> dict[str, Any]:
        """What became of a command so far (``done``, ``outcome``, ``message``)."""
        with self._lock:
            self._check_open()
            return self.client.request("outcome", {"id": command_id})

    def alive(self) -> bool:
        """Whether the run's process still exists."""
        return pid_alive(self.client.pid)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionError_("the cockpit's connection to the run is closed")
