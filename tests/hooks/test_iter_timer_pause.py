"""A pause is no part of any iteration: data time, iteration time, speed and ETA ignore it.

A real run in a thread is paused by the ``pause`` command at a known iteration; the test holds the
pause for a second of wall-clock time (the quantity measured), then sends ``continue``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from support import tiny_cfg, wait_for

from cockpit import Hook, Runner

HELD = 1.0  # seconds the test keeps the run paused


class PauseAt(Hook):
    """Stands still after iteration ``at`` (saying so in the hub's info ``held_at``) until the test
    has queued a command."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if runner.iter + 1 == self.at:
            runner.message_hub.update_info("held_at", self.at)
            wait_for(lambda: runner.control.pending_count(), 60, "the pause command")


def test_a_pause_counts_neither_as_data_time_nor_in_the_speed_and_eta(tmp_path):
    cfg = tiny_cfg(tmp_path / "work", custom_hooks=[PauseAt(4)], default_hooks=dict(logger=None))
    cfg["health_guard"] = None
    runner = Runner.from_cfg(cfg, log_to_console=False)
    thread = threading.Thread(target=runner.train, daemon=True)
    thread.start()
    wait_for(lambda: runner.message_hub.get_info("held_at"), 60, "the run to reach iteration 4")
    assert runner.control.submit("pause").outcome != "rejected"
    wait_for(lambda: runner.message_hub.status == "paused", 60, "the run to pause")
    paused_at = time.perf_counter()
    wait_for(lambda: time.perf_counter() - paused_at > HELD, 60, "the pause to last", interval=0.05)
    assert runner.control.submit("continue").wait(30)
    thread.join(60)
    assert not thread.is_alive() and runner.message_hub.status == "finished"

    hub = runner.message_hub
    data_times = hub.get_scalar("train/data_time").series()[1]
    times = hub.get_scalar("train/time").series()[1]
    assert len(times) == runner.max_iters
    assert max(data_times) < HELD / 2, f"a pause was counted as data time: {data_times}"
    assert max(times) < HELD / 2, f"a pause was counted as iteration time: {times}"
    assert hub.get_info("iters_per_sec") > 2 / HELD, "the speed fell after the pause"
