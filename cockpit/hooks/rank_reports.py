"""Per-rank progress reports that bypass collectives: which rank holds a distributed run up.

When one rank hangs, the others soon block in the next collective (a DDP gradient all-reduce, the
steering's agreement), so figures that ride on a collective stop for every rank at once and cannot
say which rank is behind. Here each rank's watcher thread writes, about once a second, a small
report to the process group's key-value store (``cockpit.dist.default_store``): its iteration, the
seconds since its last one, and where its training thread is (the innermost frame outside torch,
and whether it is waiting inside ``torch.distributed``, DDP or, under DDP, autograd). On a stall,
rank 0 reads every rank's report: the ranks that are not waiting in a collective, or have stopped
reporting, are the ones holding the others up.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import time
from typing import Any

import torch

#: Seconds between a rank's reports.
REPORT_INTERVAL = 1.0
#: A report older than this many seconds comes from a process that stopped answering.
SILENT_AFTER = 3 * REPORT_INTERVAL + 5.0

_TORCH = os.path.dirname(torch.__file__) + os.sep
_WAITING = tuple(os.path.join(_TORCH, part) + os.sep for part in ("distributed", os.path.join("nn", "parallel")))
_AUTOGRAD = os.path.join(_TORCH, "autograd") + os.sep
_STDLIB = sysconfig.get_paths()["stdlib"] + os.sep
_SITE = tuple(sysconfig.get_paths()[name] + os.sep for name in ("purelib", "platlib"))


def training_position(thread_id: int, distributed: bool = True) -> tuple[str, bool]:
    """Where thread ``thread_id`` is: ``(where, waiting)``.

    ``where`` names the innermost frame of the program (outside torch and the standard library) as
    ``qualname (file:line)``, followed by the library function it is in, if any; ``waiting`` is
    whether it is inside a collective (a frame of ``torch.distributed`` or ``torch.nn.parallel``,
    or of autograd when ``distributed``: DDP's backward waits for the gradient all-reduce there).
    """
    frame = sys._current_frames().get(thread_id)
    inner: str | None = None  # the innermost library function
    where, waiting = "", False
    while frame is not None:
        code = frame.f_code
        path = code.co_filename
        if path.startswith(_TORCH):
            waiting = waiting or path.startswith(_WAITING) or (distributed and path.startswith(_AUTOGRAD))
            inner = inner or f"torch's {code.co_qualname}"
        elif path.startswith(_STDLIB) and not path.startswith(_SITE):
            inner = inner or code.co_qualname
        elif not where:
            where = f"{code.co_qualname} ({os.path.basename(path)}:{frame.f_lineno})"
            if inner:
                where += f" in {inner}"
        frame = frame.f_back
    return where or (inner or ""), waiting


class RankReporter:
    """One rank's side: write its report; rank 0's side: read them all and name the ranks behind."""

    def __init__(self, store: Any, rank: int, world_size: int) -> None:
        self.store, self.rank, self.world_size = store, rank, world_size
        self._next = 0.0

    @staticmethod
    def key(rank: int) -> str:
        return f"cockpit/health/{rank}"

    def due(self, now: float) -> bool:
        return now >= self._next

    def report(self, iteration: int, idle: float, where: str, waiting: bool, now: float) -> None:
        """Write this rank's report: ``iteration`` is ``runner.iter`` (0-based: the one under way)."""
        self._next = now + REPORT_INTERVAL
        self.store.set(self.key(self.rank), json.dumps(
            {"iter": iteration, "idle": round(idle, 3), "where": where, "waiting": waiting, "time": time.time()}))

    def read(self) -> list[dict[str, Any] | None]:
        """Every rank's last report (None for a rank that has not reported yet), in rank order."""
        reports: list[dict[str, Any] | None] = []
        for rank in range(self.world_size):
            key = self.key(rank)
            reports.append(json.loads(self.store.get(key)) if self.store.check([key]) else None)
        return reports


def ranks_behind(reports: list[dict[str, Any] | None], now: float) -> tuple[list[int], str]:
    """The ranks that hold the others up, and a sentence on every rank's state.

    A rank is behind when its report says it is not waiting in a collective, or when it has no
    fresh report (its process stopped answering). When every rank waits, none is named: the
    collectives themselves do not match (or the network is gone).
    """
    behind: list[int] = []
    parts: list[str] = []
    waiting: list[int] = []
    for rank, report in enumerate(reports):
        if report is None or now - report["time"] > SILENT_AFTER:
            behind.append(rank)
            age = "never reported" if report is None else f"silent for {now - report['time']:.0f} s"
            parts.append(f"rank {rank} {age} (its process does not answer)")
        elif report["waiting"]:
            waiting.append(rank)
        else:
            behind.append(rank)
            parts.append(f"rank {rank} holds the others up: no iteration for {report['idle']:.1f} s, "
                         f"at iter {report['iter'] + 1}" + (f", in {report['where']}" if report["where"] else ""))
    if not behind:
        return [], "every rank waits in a collective (do they call the same collectives?)"
    if waiting:
        parts.append(f"rank{'s' if len(waiting) > 1 else ''} {', '.join(map(str, waiting))} "
                     f"wait{'' if len(waiting) > 1 else 's'} in a collective")
    return behind, "; ".join(parts)


__all__ = ["REPORT_INTERVAL", "RankReporter", "ranks_behind", "training_position"]
