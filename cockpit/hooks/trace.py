"""How hook calls reach views: ``HookTrace`` times them into the hub, in batches while a view listens.

Cockpit's own runner (``cockpit.hooks.dispatch``) and every framework adapter report their hooks
through it, so a view reads a Cockpit run and an adapted one alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cockpit.hub import MessageHub

#: Least seconds between two events that say which stage runs, and two batches of hook timings: a view
#: redraws a few times a second, and an event per stage and iteration was most of what a watched run sent.
SHOW_INTERVAL = 0.1

#: A row of the hook table: ``(priority name, priority, hook name)`` (``MessageHub.set_hooks_table``).
HookEntry = tuple[str, int, str]


class HookTrace:
    """Hooks in execution order, and how long each call took, as hub events (the runner's dispatcher
    and each framework adapter keep one).

    Every call is timed. While a view listens (``listened``), each call is kept in its stage's list (``calls``) and
    published in batches: per stage, one ``StageTimed`` event with every call since the last batch (each with its
    own duration), about every ``interval`` (``next_flush``), and whenever its owner calls ``flush``: an adapter
    when a paused run waits, a command is applied or the run ends; the runner's dispatcher before any stage that
    is not per-iteration, and once the view has left. A view's calls, mean time and share of each hook are
    therefore exact, at most a batch behind; one event per stage and batch costs the training thread a fraction of
    one per stage and iteration. While no view listens, there is no event to make: a call is added to the hub's count and total time
    of its hook (``counter``; what a view's snapshot shows when it comes), and nothing is kept until a tick. Which
    stage runs is sent at most every ``interval`` (``next_show``).
    """

    def __init__(self, hub: MessageHub, interval: float = SHOW_INTERVAL) -> None:
        self.hub = hub
        self.interval = interval  # ``SHOW_INTERVAL`` unless told
        self._pending: dict[str, list[tuple[str, float]]] = {}
        self.next_show = 0.0  # when ``enter`` sends the next ``StageEntered`` (``time.perf_counter()``)
        self.next_flush = 0.0  # when the calls kept are due to be published

    def enter(self, stage: str, now: float | None = None) -> None:
        """A stage starts: a ``StageEntered`` event if none went out lately, else just noted."""
        if now is None:
            now = time.perf_counter()
        if now >= self.next_show:
            self.next_show = now + self.interval
            self.hub.enter_stage(stage)
        else:
            self.hub.note_stage(stage)

    def calls(self, stage: str) -> list[tuple[str, float]]:
        """The list where the calls of ``stage`` wait to be published: append ``(hook, seconds)`` to it.

        It stays the same list for the trace's life (``flush`` empties it), so a caller may keep it.
        """
        calls = self._pending.get(stage)
        if calls is None:
            calls = self._pending[stage] = []
        return calls

    @property
    def listened(self) -> bool:
        """Whether a view follows the hub's events now: then each call goes to ``calls``, else to ``counter``."""
        return self.hub.has_subscribers

    def counter(self, stage: str, hook: str) -> list[float]:
        """The hub's ``[calls, seconds]`` of ``hook`` at ``stage``: add each call to it while no view listens.

        The training thread is its only writer (``MessageHub.hook_counter``); it stays the same list.
        """
        return self.hub.hook_counter(stage, hook)

    def publish_table(self, rows: Iterable[tuple[str, Sequence[HookEntry]]]) -> None:
        """Publish the hook order: ``(stage, ((priority name, priority, hook), ...))`` per stage."""
        self.hub.set_hooks_table(tuple((stage, tuple(entries)) for stage, entries in rows if entries))

    def flush(self, now: float | None = None) -> None:
        """Publish the calls not published yet: one ``StageTimed`` event per stage.

        Whoever appends to a ``calls`` list calls it once ``next_flush`` has passed.
        """
        self.next_flush = (time.perf_counter() if now is None else now) + self.interval
        for stage, calls in self._pending.items():
            if calls:
                self.hub.record_stage(stage, calls)  # it keeps a copy
                calls.clear()


__all__ = ["SHOW_INTERVAL", "HookEntry", "HookTrace"]
