"""Per-rank reports through the process group's store: where a rank's training thread is, and
which ranks hold a distributed run up (the two-process run is in tests/e2e/test_health_guard.py)."""

from __future__ import annotations

import datetime
import re
import socket
import threading
import time
from types import SimpleNamespace

import pytest
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from cockpit.hooks.health import HealthGuardHook
from cockpit.hooks.rank_reports import SILENT_AFTER, RankReporter, ranks_behind, training_position
from cockpit.hub import MessageHub


def parked(target) -> tuple[threading.Thread, threading.Event]:
    """A thread running ``target(release)``, started and waiting in it until ``release`` is set."""
    release, inside = threading.Event(), threading.Event()
    thread = threading.Thread(target=target, args=(release, inside), daemon=True)
    thread.start()
    assert inside.wait(30)
    return thread, release


def wait_in_user_code(release: threading.Event, inside: threading.Event) -> None:
    inside.set()
    release.wait(60)


def test_a_thread_in_its_own_code_is_named_and_not_waiting():
    thread, release = parked(wait_in_user_code)
    try:
        where, waiting = training_position(thread.ident)
    finally:
        release.set()
    # The program's innermost frame, then the standard library's function it waits in.
    assert re.fullmatch(r"wait_in_user_code \(test_rank_reports\.py:\d+\) in Condition\.wait", where), where
    assert waiting is False


def test_a_thread_called_back_from_torch_distributed_counts_as_waiting():
    # record() wraps the function in torch.distributed.elastic: a frame of torch.distributed outside it.
    thread, release = parked(record(wait_in_user_code))
    try:
        where, waiting = training_position(thread.ident)
    finally:
        release.set()
    assert where.startswith("wait_in_user_code ("), where
    assert waiting is True


def test_an_unknown_thread_has_no_position():
    assert training_position(-1) == ("", False)


def report(iteration: int, *, waiting: bool, idle: float = 0.0, where: str = "", age: float = 0.0) -> dict:
    return {"iter": iteration, "idle": idle, "where": where, "waiting": waiting, "time": 1000.0 - age}


def test_the_rank_not_waiting_in_a_collective_is_the_one_behind():
    behind, text = ranks_behind([report(20, waiting=True), report(19, waiting=False, idle=63.2, where="Hang.run (cfg.py:3)"),
                                 report(20, waiting=True)], now=1000.0)
    assert behind == [1]
    assert text == ("rank 1 holds the others up: no iteration for 63.2 s, at iter 20, in Hang.run (cfg.py:3); "
                    "ranks 0, 2 wait in a collective")


def test_a_rank_that_stopped_reporting_or_never_did_is_behind():
    behind, text = ranks_behind([report(5, waiting=True), report(5, waiting=True, age=SILENT_AFTER + 1), None],
                                now=1000.0)
    assert behind == [1, 2]
    assert f"rank 1 silent for {SILENT_AFTER + 1:.0f} s (its process does not answer)" in text
    assert "rank 2 never reported" in text and text.endswith("rank 0 waits in a collective")


def test_when_every_rank_waits_none_is_named():
    assert ranks_behind([report(5, waiting=True), report(5, waiting=True)], now=1000.0) == (
        [], "every rank waits in a collective (do they call the same collectives?)")


@pytest.fixture
def store():
    with socket.socket() as probe:  # a free port for a one-process TCPStore (server and client)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return dist.TCPStore("127.0.0.1", port, world_size=1, is_master=True, timeout=datetime.timedelta(seconds=10))


def test_reports_go_through_the_store_and_a_missing_rank_reads_as_none(store):
    reporter = RankReporter(store, rank=0, world_size=2)
    assert reporter.due(time.perf_counter())
    reporter.report(7, 0.25, "Loop.run (loops.py:9)", False, now=time.perf_counter())
    assert not reporter.due(time.perf_counter())  # about one report a second
    ours, theirs = RankReporter(store, rank=0, world_size=2).read()
    assert theirs is None
    assert (ours["iter"], ours["idle"], ours["where"], ours["waiting"]) == (7, 0.25, "Loop.run (loops.py:9)", False)
    assert abs(ours["time"] - time.time()) < 60


def test_rank_zero_flags_the_hung_rank_in_the_published_rank_health():
    hub = MessageHub("run")
    runner = SimpleNamespace(world_size=2, message_hub=hub)
    guard = HealthGuardHook()
    guard.rank_health = [{"rank": 0, "iter": 20, "straggler": False, "step_time": 0.01},
                         {"rank": 1, "iter": 19, "straggler": False, "step_time": 0.01}]
    guard._publish_reports(runner, [report(20, waiting=True, idle=0.5), report(19, waiting=False, idle=63.0,
                                                                               where="Hang.run (cfg.py:3)")], [1])
    health = hub.get_info("rank_health")
    assert [(row["rank"], row["hung"], row["idle"], row["where"]) for row in health] == [
        (0, False, 0.5, ""), (1, True, 63.0, "Hang.run (cfg.py:3)")]
    assert health[1]["step_time"] == 0.01  # the last all-reduce's figures stay beside the flags
