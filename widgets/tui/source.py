"""Where the cockpit's data comes from: a live run (``RunClient``) or a fixed snapshot (tests)."""

from __future__ import annotations

from typing import Any


class StaticSource:
    """A run frozen at one snapshot: for snapshot tests and demos of the layout.

    Commands are recorded in ``sent`` and answered as applied.
    """

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot
        self.sent: list[tuple[str, tuple[str, ...]]] = []
        self.info = {"run_dir": "", "experiment_name": snapshot.get("name", "")}

    def snapshot(self, max_points: int | None = None) -> dict[str, Any]:
        return self._snapshot

    def poll_events(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        import time

        time.sleep(timeout)
        return []

    def command(self, name: str, *args: str, wait: bool = True, timeout: float = 120.0) -> dict[str, Any]:
        self.sent.append((name, args))
        return {"id": str(len(self.sent)), "name": name, "args": list(args), "done": True, "outcome": "applied",
                "message": "recorded"}

    def close(self) -> None:
        pass
