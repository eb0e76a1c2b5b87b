"""The system monitor samples a real process and the machine into a real hub, from its own thread."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest
from support import wait_for

from cockpit.hub import MessageHub
from cockpit.system_monitor import INFO_KEY, SystemMonitor


def entry(hub: MessageHub) -> dict | None:
    return hub.get_info(INFO_KEY)


def test_publishes_this_process_and_the_machine_from_its_own_thread():
    hub = MessageHub("run")
    subscription = hub.subscribe()
    ballast = bytearray(64 * 1024 * 1024)  # resident memory the sample must see
    ballast[::4096] = b"x" * len(ballast[::4096])
    with SystemMonitor(hub, interval=0.05) as monitor:
        sample = wait_for(lambda: (e := entry(hub)) and e["samples"] >= 3 and e, what="three samples")
        assert any(t.name == "cockpit-system-monitor" and t.daemon for t in threading.enumerate())
    assert monitor._thread is None
    process, machine = sample["process"], sample["machine"]
    assert process["pid"] == os.getpid()
    assert process["rss"] > len(ballast)
    assert process["threads"] >= 2  # this one and the monitor's
    assert 0 <= machine["cpu"] <= 100 and machine["cores"] >= 1
    assert 0 < machine["memory_used"] <= machine["memory_total"]
    assert len(sample["history"]["process_rss"]) == sample["samples"]
    # Each sample is one runtime-info event: a view follows the stream as for any other info.
    events = [e for e in subscription.poll() if getattr(e, "key", None) == INFO_KEY]
    assert len(events) >= 3 and events[-1].value["samples"] == hub.get_info(INFO_KEY)["samples"]
    assert hub.snapshot()["info"][INFO_KEY]["samples"] >= 3  # a view attaching late sees the history


def test_cpu_of_a_busy_child_process_and_the_history_stays_bounded():
    hub = MessageHub("run")
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with SystemMonitor(hub, interval=0.05, history=5, pid=child.pid):
            # The child spins: some sample shows it using a real share of a core (a loaded machine
            # gives it less than all of one), and by then more samples than the history holds were taken.
            busy = wait_for(lambda: (e := entry(hub)) and e["samples"] > 8 and e["process"]["cpu"] > 5 and e,
                            what="a sample of the busy child")
    finally:
        child.kill()
        child.wait()
    assert busy["process"]["pid"] == child.pid
    assert all(len(values) == 5 for values in busy["history"].values())


def test_a_process_that_ends_leaves_the_monitor_running():
    hub = MessageHub("run")
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    with SystemMonitor(hub, interval=0.05, pid=child.pid):
        wait_for(lambda: (e := entry(hub)) and e["process"], what="a sample of the child")
        child.stdin.close()
        child.wait()
        gone = wait_for(lambda: (e := entry(hub)) and e["process"] is None and e, what="a sample after it ended")
        after = gone["samples"]
        wait_for(lambda: entry(hub)["samples"] > after, what="the next sample")  # still sampling the machine
    assert entry(hub)["machine"]["memory_total"] > 0


def test_no_gpu_means_no_gpu_rows_and_a_note_never_an_error():
    # This machine has no NVIDIA driver; nvidia-ml-py may or may not be installed: either way, no rows.
    hub = MessageHub("run")
    with SystemMonitor(hub, interval=0.05):
        sample = wait_for(lambda: entry(hub), what="a sample")
    assert sample["gpus"] == []
    assert sample["gpu_note"]


def test_without_nvidia_ml_py_the_note_says_to_install_it():
    script = textwrap.dedent("""
        import sys
        sys.modules["pynvml"] = None  # as if nvidia-ml-py were not installed
        import time
        from cockpit.hub import MessageHub
        from cockpit.system_monitor import SystemMonitor
        hub = MessageHub("run")
        deadline = time.monotonic() + 60
        with SystemMonitor(hub, interval=0.01):
            while hub.get_info("system") is None and time.monotonic() < deadline:
                time.sleep(0.01)
        print(hub.get_info("system")["gpu_note"])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "nvidia-ml-py is not installed"


def test_stop_ends_the_thread_and_the_samples():
    hub = MessageHub("run")
    monitor = SystemMonitor(hub, interval=0.05).start()
    assert monitor.start() is monitor  # a second start does nothing
    wait_for(lambda: entry(hub), what="a sample")
    monitor.stop()
    monitor.stop()  # twice is fine
    count = entry(hub)["samples"]
    assert not any(t.name == "cockpit-system-monitor" for t in threading.enumerate())
    assert entry(hub)["samples"] == count


@pytest.mark.parametrize("kwargs, message", [({"interval": 0}, "interval must be positive"),
                                             ({"history": 0}, "history must keep at least 1")])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SystemMonitor(MessageHub("run"), **kwargs)
