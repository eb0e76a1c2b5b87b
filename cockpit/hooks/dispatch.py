"""Hook dispatch, worked out once: per stage, the bound methods of the hooks that override it.

Registration follows MMEngine's ``register_hook``: a hook goes after every hook
of higher or equal priority, so ties run in registration order. Each call is
timed and reported to the hub, which is how views show the live hook trace and
which hook is slow.

While a view listens, the stages that run every iteration (``*_iter``) are reported
in batches through a ``HookTrace``, as the adapters report a framework's hooks: their
calls are published about every ``SHOW_INTERVAL`` (one ``StageTimed`` per stage, with
every call since the last batch, each with its own duration), and which of them runs
is sent at most as often. Any other stage (``before_val``, ``after_train_epoch``, ``after_run``...)
is sent as it starts and its calls as it ends, after the batch it follows.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from cockpit.hooks.base import STAGES, Hook
from cockpit.hooks.trace import SHOW_INTERVAL, HookTrace
from cockpit.priority import get_priority, priority_name

if TYPE_CHECKING:
    from cockpit.hub import MessageHub


class HookDispatcher:
    """The ordered hooks of a runner and the per-stage call table.

    Args:
        hub: where calls are reported.
    """

    def __init__(self, hub: MessageHub) -> None:
        self.hub = hub
        self.hooks: list[Hook] = []
        self.names: list[str] = []
        self._table: dict[str, tuple[tuple[str, Callable[..., Any]], ...]] = {}
        self.trace = HookTrace(hub, SHOW_INTERVAL)  # the per-iteration stages' calls, while a view listens

    def register(self, hook: Hook, priority: int | str | None = None) -> None:
        """Insert ``hook`` after every hook with a priority value lower than or equal to its own."""
        if not isinstance(hook, Hook):
            raise TypeError(f"hooks must be Hook instances, got {type(hook).__name__}; subclass cockpit.Hook")
        if priority is not None:
            hook.priority = priority
        value = get_priority(hook.priority)  # validates a bad priority early, with a clear error
        index = 0
        for i in range(len(self.hooks) - 1, -1, -1):
            if value >= get_priority(self.hooks[i].priority):
                index = i + 1
                break
        self.hooks.insert(index, hook)
        self._rebuild()

    def remove(self, hook: Hook) -> None:
        self.hooks.remove(hook)
        self._rebuild()

    def _rebuild(self) -> None:
        counts: dict[str, int] = {}
        self.names = []
        for hook in self.hooks:
            name = type(hook).__name__
            counts[name] = counts.get(name, 0) + 1
            self.names.append(name if counts[name] == 1 else f"{name}#{counts[name]}")
        table = {}
        for stage in STAGES:
            table[stage] = tuple(
                (name, getattr(hook, stage), self.hub.hook_counter(stage, name))
                for name, hook in zip(self.names, self.hooks, strict=True)
                if stage in hook.get_triggered_stages()
            )
        self._table = table
        self.hub.set_hooks_table(self.table())

    def call(self, runner: Any, stage: str, **kwargs: Any) -> None:
        """Run every hook that overrides ``stage``, in order, timing each.

        This is on every iteration's path: while nobody listens, the timings go straight into
        the hub's per-hook counters (the training thread is their only writer) and no event is
        built. One clock read per hook: each hook's time runs from the read that ended the
        previous hook's (or the first read) to the read after it, so the few bytecodes of this
        loop between two hooks count towards the next one.
        """
        hub = self.hub
        entries = self._table.get(stage)
        if entries is None:
            entries = self._custom_stage(stage)
        trace = self.trace
        if not hub.has_subscribers:
            if trace.next_flush:
                trace.flush()  # the view left: what it did not get goes to the counters
                trace.next_flush = 0.0
            hub.note_stage(stage)
            if not entries:
                return
            clock = perf_counter
            start = clock()
            for _, method, stats in entries:
                method(runner, **kwargs)
                end = clock()
                stats[0] += 1
                stats[1] += end - start
                start = end
            return
        start = perf_counter()
        if not stage.endswith("_iter"):
            # A stage of its own: the batch before it is published first, then it, as it starts and
            # as it ends (counters and event together, as ``HookTrace.flush`` publishes a batch).
            trace.flush(start)
            hub.enter_stage(stage)
            calls = []
            for name, method, _ in entries:
                method(runner, **kwargs)
                end = perf_counter()
                calls.append((name, end - start))
                start = end
            hub.record_stage(stage, calls)
            return
        trace.enter(stage, start)
        calls = trace.calls(stage)
        for name, method, _ in entries:
            method(runner, **kwargs)
            end = perf_counter()
            calls.append((name, end - start))
            start = end
        if start >= trace.next_flush:
            trace.flush(start)

    def call_all(self, runner: Any, stage: str, **kwargs: Any) -> list[tuple[str, BaseException]]:
        """Like ``call``, but a hook that raises does not stop the next ones (for cleanup).

        Returns:
            ``(hook name, error)`` for each hook that raised.
        """
        errors = []
        calls = []
        self.trace.flush()
        self.hub.enter_stage(stage)
        for name, method, _ in self._table.get(stage) or self._custom_stage(stage):
            start = perf_counter()
            try:
                method(runner, **kwargs)
            except Exception as error:  # noqa: BLE001 - reported to the caller
                errors.append((name, error))
            calls.append((name, perf_counter() - start))
        self.hub.record_stage(stage, calls)
        return errors

    def _custom_stage(self, stage: str) -> tuple:
        """A stage that is not MMEngine's (a custom loop calls ``before_warmup_iter``, say): as in
        MMEngine, every hook that has a method of that name is called, in priority order."""
        if not stage.isidentifier() or stage.startswith("__"):
            raise ValueError(f"{stage!r} is not a hook stage name")
        entries = tuple((name, getattr(hook, stage), self.hub.hook_counter(stage, name))
                        for name, hook in zip(self.names, self.hooks, strict=True)
                        if callable(getattr(hook, stage, None)))
        self._table[stage] = entries
        return entries

    def table(self) -> tuple:
        """``((stage, ((priority_name, priority, hook_name), ...)), ...)`` for stages with hooks."""
        rows = []
        for stage in STAGES:
            entries = []
            for name, hook in zip(self.names, self.hooks, strict=True):
                if stage in hook.get_triggered_stages():
                    entries.append((priority_name(hook.priority), get_priority(hook.priority), name))
            if entries:
                rows.append((stage, tuple(entries)))
        return tuple(rows)

    def info(self) -> str:
        """The hook order per stage, in MMEngine's ``get_hooks_info`` layout."""
        blocks = []
        for stage, entries in self.table():
            lines = [f"{stage}:"]
            lines += [f"({name:<12}) {hook:<35}" for name, _, hook in entries]
            lines.append(" -------------------- ")
            blocks.append("\n".join(lines))
        return "\n".join(blocks)
