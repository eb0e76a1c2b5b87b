"""The machine a run trains on, sampled once a second: CPU, memory and GPUs, for the views' system panel.

``SystemMonitor`` runs a daemon thread beside training. Once per ``interval`` it samples the
training process (CPU as a percentage of one core, resident memory, threads), the machine (CPU,
memory) and each NVIDIA GPU (utilisation, memory), and publishes it all as one runtime-info entry,
``hub.update_info("system", {...})``, with the last ``history`` samples of each figure for
sparklines. The training thread does nothing per step; a view attaching late finds the recent
history in the hub's snapshot.

GPUs are read through ``pynvml`` (the ``nvidia-ml-py`` package) when it is installed and a driver
answers; otherwise the entry has no GPU rows and says why in ``gpu_note``. Never an error: a
monitor must not be the reason a run fails.

The share of each iteration spent waiting for data is not sampled here: views compute it from
the run's own ``train/data_time`` and ``train/time`` scalars (``IterTimerHook``), step by step.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any

import psutil

from cockpit.hub import MessageHub

#: The runtime-info key the monitor publishes under.
INFO_KEY = "system"


class _Gpus:
    """The NVIDIA GPUs of this machine through NVML, or none (``note`` says why)."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.names: list[str] = []
        self.note = ""
        try:
            import pynvml
        except ImportError:
            self.note = "nvidia-ml-py is not installed"
            return
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self.names = [_text(pynvml.nvmlDeviceGetName(handle)) for handle in self.handles]
        except pynvml.NVMLError as error:
            self.handles, self.names = [], []
            self.note = f"no NVIDIA driver answered ({error})"
            return
        if not self.handles:
            self.note = "no NVIDIA GPU"

    def sample(self) -> list[dict[str, Any]]:
        """Utilisation (%) and memory (bytes) of each GPU; a GPU that stops answering is left out."""
        rows = []
        for index, (handle, name) in enumerate(zip(self.handles, self.names, strict=True)):
            try:
                util = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except self._nvml.NVMLError:
                continue
            rows.append({"index": index, "name": name, "util": float(util.gpu),
                         "memory_used": int(memory.used), "memory_total": int(memory.total)})
        return rows

    def close(self) -> None:
        if self.handles:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass


def _text(value: str | bytes) -> str:
    """NVML names are bytes in older bindings, str in newer ones."""
    return value.decode() if isinstance(value, bytes) else value


class SystemMonitor:
    """Publish the process's and the machine's load to ``hub`` once per ``interval``, from a thread.

    Args:
        hub: the run's message hub.
        interval: seconds between two samples.
        history: how many samples of each figure the published entry keeps.
        pid: the process to watch (this one by default).

    The entry (``hub.get_info("system")``)::

        {"time": <epoch seconds>, "interval": 1.0, "samples": <count so far>,
         "process": {"pid", "cpu" (% of one core), "rss" (bytes), "threads"} or None once it is gone,
         "machine": {"cpu" (% of all cores), "cores", "memory" (%), "memory_used", "memory_total"},
         "gpus": [{"index", "name", "util" (%), "memory_used", "memory_total"}, ...],
         "gpu_note": why there are no GPU rows ("" when there are),
         "history": {"process_cpu": [...], "process_rss": [...], "machine_cpu": [...],
                     "machine_memory": [...], "gpu0_util": [...], "gpu0_memory": [...], ...}}
    """

    def __init__(self, hub: MessageHub, interval: float = 1.0, history: int = 60, pid: int | None = None) -> None:
        if interval <= 0:
            raise ValueError(f"SystemMonitor interval must be positive seconds, got {interval!r}")
        if history < 1:
            raise ValueError(f"SystemMonitor history must keep at least 1 sample, got {history!r}")
        self.hub = hub
        self.interval = interval
        self.pid = os.getpid() if pid is None else pid
        self._history: dict[str, deque[float]] = {}
        self._length = history
        self._samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: psutil.Process | None = None
        self._gpus: _Gpus | None = None

    # --- lifetime -----------------------------------------------------------------------------------
    def start(self) -> SystemMonitor:
        """Start sampling (in a daemon thread); a second call does nothing."""
        if self._thread is not None:
            return self
        self._stop.clear()
        try:
            self._process = psutil.Process(self.pid)
            self._process.cpu_percent(None)  # the first reading only sets the baseline
        except psutil.Error:
            self._process = None
        psutil.cpu_percent(None)
        self._thread = threading.Thread(target=self._loop, name="cockpit-system-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and wait for the thread (at most one sample's time); the last entry stays."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=max(5.0, 2 * self.interval))

    def __enter__(self) -> SystemMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        # NVML is opened in the thread, so a slow driver never delays the run's start.
        self._gpus = _Gpus()
        try:
            while not self._stop.wait(self.interval):
                self.hub.update_info(INFO_KEY, self.sample())
        finally:
            self._gpus.close()

    # --- one sample ---------------------------------------------------------------------------------
    def sample(self) -> dict[str, Any]:
        """Read every figure once, add it to the history, and return the entry to publish."""
        process = self._sample_process()
        memory = psutil.virtual_memory()
        machine = {"cpu": round(psutil.cpu_percent(None), 1), "cores": psutil.cpu_count() or 1,
                   "memory": round(memory.percent, 1), "memory_used": int(memory.total - memory.available),
                   "memory_total": int(memory.total)}
        gpus = self._gpus.sample() if self._gpus is not None else []
        self._remember("process_cpu", process["cpu"] if process else 0.0)
        self._remember("process_rss", process["rss"] if process else 0)
        self._remember("machine_cpu", machine["cpu"])
        self._remember("machine_memory", machine["memory"])
        for gpu in gpus:
            self._remember(f"gpu{gpu['index']}_util", gpu["util"])
            self._remember(f"gpu{gpu['index']}_memory", round(100 * gpu["memory_used"] / max(1, gpu["memory_total"]), 1))
        self._samples += 1
        return {
            "time": time.time(),
            "interval": self.interval,
            "samples": self._samples,
            "process": process,
            "machine": machine,
            "gpus": gpus,
            "gpu_note": self._gpus.note if self._gpus is not None else "",
            "history": {key: list(values) for key, values in self._history.items()},
        }

    def _sample_process(self) -> dict[str, Any] | None:
        """The watched process's CPU (% of one core), resident memory and threads; None once it is gone."""
        if self._process is None:
            return None
        try:
            with self._process.oneshot():
                return {"pid": self.pid, "cpu": round(self._process.cpu_percent(None), 1),
                        "rss": int(self._process.memory_info().rss), "threads": self._process.num_threads()}
        except psutil.Error:
            self._process = None
            return None

    def _remember(self, key: str, value: float) -> None:
        values = self._history.get(key)
        if values is None:
            values = self._history[key] = deque(maxlen=self._length)
        values.append(value)


__all__ = ["INFO_KEY", "SystemMonitor"]
