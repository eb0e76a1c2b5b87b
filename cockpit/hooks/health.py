"""``HealthGuardHook``: pause a run that went wrong, ask what to do, and never wait for ever.

It watches for a non-finite loss (or gradient norm, when the wrapper clips by norm), a loss spike
(robust z-score ``(loss - median) / (1.4826 * MAD)`` over the last ``spike_window`` losses, upwards
only), a stall (no iteration for ``stall_factor`` median steps and ``stall_min_seconds``: a watcher
thread sees it, the training thread being the one stuck), and in distributed runs a straggler (own
time above ``straggler_factor`` times the median rank's) or a hung rank (the stall watcher trips;
rank 0 names the ranks holding the others up from the reports every rank's watcher writes to the
process group's store, ``rank_reports.py``: a collective cannot carry them while a rank hangs).
Each rank's figures ride on the steering's existing agreement all-reduce; rank 0 publishes them
as the runtime info ``rank_health`` (with ``hung``, ``idle`` and ``where`` from the reports).

A trip pauses the run (it is not killed): a WARNING in the log, a ``GuardTripped`` event and the
runtime info ``guard_alert`` (views ring the bell, show a banner), and the notifier in the
background. The answers are commands: ``guard-continue``; ``guard-rollback [skip|*F]`` (resume in
place from the newest checkpoint saved before the trip, optionally skipping the batches up to the
bad one or scaling the lr); ``guard-stop`` (roll back, save that good state as the newest, stop;
with no good checkpoint, stop without saving, so ``latest`` never names a poisoned state). With no
answer in ``answer_timeout`` s the ``fallback`` applies: a roll-back, then a stop if the same kind
trips again. A NaN must not reach the weights, so a wrapper at ``on_nonfinite='stop'`` is switched
to ``'skip'`` in a one-process run: the guard pauses where MMEngine would fail or train on (a
difference on purpose; ``health_guard=None`` turns it off). Under DDP a NaN loss still fails the run.

Cost. The guard reads no tensor itself: the ``RuntimeInfoHook`` (a default hook) keeps each step's
logged values on the device and hands them to the guard, each with its step, when it reads them
(one transfer for all), at the latest every ``device_read_interval`` steps. So between those points
the guard makes no host-device sync; a trip names the step the bad value came from, and a NaN step
the wrapper skipped never reached the weights. A step costs a clock read and a deque append; a
value a dict look-up and one comparison (the median and MAD are refreshed every ``refresh`` steps).
Without that hook it keeps the loss tensors itself and reads them the same way.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cockpit import events as ev
from cockpit.commands import Arg, Command, CommandRejected, _resume, _set
from cockpit.dist import default_store, peak_memory_mb
from cockpit.hooks.base import DataBatch, Hook
from cockpit.hooks.rank_reports import RankReporter, ranks_behind, training_position
from cockpit.hooks.runtime_info import RuntimeInfoHook
from cockpit.notify import Notifier
from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.interface import RunContext

CONTINUE, ROLLBACK, STOP = "guard-continue", "guard-rollback", "guard-stop"
CHOICES = (CONTINUE, ROLLBACK, STOP)
FALLBACKS = ("rollback", "stop", "continue")
KINDS = ("nonfinite", "spike", "stall", "straggler")
_clock = time.perf_counter
_NEG_INF = -math.inf
#: One row per rank on the agreement all-reduce: these figures, in this order.
ROW = ("step_time", "host_time", "train_time", "data_time", "memory_mb", "heartbeat", "iter", "alert", "alert_step")


def _blank_row(rank: int) -> dict[str, Any]:
    """A ``rank_health`` row for a rank no all-reduce has reported yet."""
    return {**dict.fromkeys(ROW, 0.0), "rank": rank, "iter": 0, "alert": "", "own_time": 0.0, "straggler": False}


class HealthGuardHook(Hook):
    """Pause a run on a non-finite value, a loss spike, a stall or a straggler; ask; fall back.

    Args:
        nonfinite: watch for a non-finite loss or gradient norm.
        spike_threshold: robust z-score above which a loss is a spike (8.0 is a good start); None (the
            default): no spike check. Off by default: on small noisy runs, a converged loss's outlier
            batches are many robust deviations, and a false alarm pauses the run.
        spike_window: how many recent losses the median and MAD come from.
        spike_min_history: losses needed before spikes are judged.
        spike_patience: how many losses in a row must be over the limit: one outlier batch (a few hard
            samples, a small noisy dataset) is no spike; a run that diverges stays up.
        spike_progress: a spike must also undo this share of the progress so far (the first window's
            median minus the current one): near a loss of zero, tiny absolute jumps are many robust
            deviations, and they are noise, not a run going wrong.
        stall_factor: a stall is no iteration for this many median step times; None: no stall check.
        stall_min_seconds: ... and at least this long (validation and saves pause the clock anyway).
        straggler_factor: a rank whose own time exceeds this many median ranks' straggles; None: off.
        straggler_action: ``'warn'`` (flag it in ``rank_health`` and the log) or ``'pause'`` (trip).
        fallback: for an unanswered alert: ``'rollback'`` (``'stop'`` on the same kind after one), ``'stop'``, ``'continue'``.
        answer_timeout: seconds to wait for an answer before the fallback.
        notify_command: argv run per alert (no shell; the alert as JSON on stdin and in env vars).
        notify_webhook: a URL that gets a POST with the alert as JSON; notify_timeout: seconds either may take.
        device_read_interval: read the step's values at least every this many steps (one sync for all of them).
        refresh: recompute the median and MAD every this many steps.
    """

    priority = Priority.ABOVE_NORMAL
    reads_every_iteration = False  # it reads the step's values as the RuntimeInfoHook publishes them

    def __init__(self, nonfinite: bool = True, spike_threshold: float | None = None, spike_window: int = 100,
                 spike_min_history: int = 20, spike_patience: int = 3, spike_progress: float = 0.5,
                 stall_factor: float | None = 20.0, stall_min_seconds: float = 300.0,
                 straggler_factor: float | None = 1.3, straggler_action: str = "warn", fallback: str = "rollback",
                 answer_timeout: float = 600.0, notify_command: Sequence[str] | None = None,
                 notify_webhook: str | None = None, notify_timeout: float = 5.0, device_read_interval: int = 10,
                 refresh: int = 25) -> None:
        optional = ("spike_threshold", "stall_factor", "straggler_factor")  # None turns the check off
        for name, value in dict(spike_threshold=spike_threshold, stall_factor=stall_factor, answer_timeout=answer_timeout,
                                straggler_factor=straggler_factor, stall_min_seconds=stall_min_seconds).items():
            if (value is not None or name not in optional) and (not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name} must be a positive number{' or None' * (name in optional)}, got {value!r}")
        for name, value in dict(spike_window=spike_window, spike_min_history=spike_min_history,
                                spike_patience=spike_patience,
                                device_read_interval=device_read_interval, refresh=refresh).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if spike_min_history > spike_window:
            raise ValueError(f"spike_min_history ({spike_min_history}) cannot exceed spike_window ({spike_window})")
        for name, value, allowed in (("fallback", fallback, FALLBACKS),
                                     ("straggler_action", straggler_action, ("warn", "pause"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        self.nonfinite, self.spike_threshold, self.spike_min_history = bool(nonfinite), spike_threshold, spike_min_history
        self.spike_patience, self._over = spike_patience, 0  # losses over the limit in a row
        if not isinstance(spike_progress, (int, float)) or not 0 <= spike_progress <= 1:
            raise ValueError(f"spike_progress must be a number from 0 to 1, got {spike_progress!r}")
        self.spike_progress, self._first_center = float(spike_progress), None
        self.stall_factor, self.stall_min_seconds = stall_factor, float(stall_min_seconds)
        self.straggler_factor, self.straggler_action = straggler_factor, straggler_action
        self.fallback, self.answer_timeout = fallback, float(answer_timeout)
        self.notifier = Notifier(notify_command, notify_webhook, notify_timeout)
        self.device_read_interval, self.refresh = device_read_interval, refresh

        self.alert: dict[str, Any] | None = None
        self.rollbacks: dict[str, int] = {}
        self.rank_health: list[dict[str, Any]] = []
        # Every checkpoint this run wrote, path -> iterations done: a roll-back replaces the hub's own
        # records with the older ones inside the checkpoint, which do not name that checkpoint itself.
        self._checkpoints: dict[str, int] = {}
        self._losses: deque[float] = deque(maxlen=spike_window)
        self._center, self._scale, self._upper = 0.0, math.inf, math.inf
        self._until_refresh = spike_min_history  # the first refresh comes once the window has enough
        self._source: RuntimeInfoHook | None = None  # the hook that publishes the step's values to us
        self._watch_grad = False  # only a wrapper that clips by norm reports one
        self._step_times: deque[float] = deque(maxlen=100)
        self._pending: list[tuple[int, Any]] = []
        self._last_tick = 0.0  # perf_counter of the last sign of progress (an iteration, a save...)
        self._suspended = True  # outside training iterations (validation, before the first step)
        self._deadline, self._fallback_sent = math.inf, False
        self._stragglers: set[int] = set()
        self._distributed = self._switched = self._nan_loss_trips = False
        self._scalars: dict[str, Any] = {}  # the hub's histories (replaced by a resume: taken again then)
        self._runner: RunContext | None = None
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()
        self._reporter: RankReporter | None = None  # distributed runs: this rank's out-of-band reports
        self._train_thread = 0  # the training thread's id, whose position the reports name
        self._hung_shown = False  # rank_health flags ranks as hung (until progress resumes)

    # --- stages -------------------------------------------------------------------------------
    def before_train(self, runner: RunContext) -> None:
        self._runner = runner
        self._scalars = runner.message_hub.log_scalars
        self.notifier.logger = runner.logger
        wrapper = runner.optim_wrapper
        self._distributed = runner.world_size > 1
        if self.nonfinite and getattr(wrapper, "on_nonfinite", None) == "stop" and not self._distributed:
            # The NaN step is dropped before it reaches the weights, and the guard pauses. (Not under
            # DDP: a rank that skipped its backward would pair its next gradient sync with the others'.)
            wrapper.on_nonfinite, self._switched = "skip", True
        # A wrapper configured with on_nonfinite='skip' was asked to train on past a NaN loss: so it does.
        self._nan_loss_trips = self.nonfinite and (self._switched or getattr(wrapper, "on_nonfinite", None) != "skip")
        clip = getattr(wrapper, "clip_grad", None)
        self._watch_grad = self.nonfinite and isinstance(clip, Mapping) and clip.get("type", "norm") == "norm"
        attach = getattr(runner.steering, "attach_health", None)
        self._source = next((h for h in getattr(runner, "hooks", ()) if isinstance(h, RuntimeInfoHook)), None)
        if self._source is not None:
            self._source.add_reader(self._read_values, self.device_read_interval)
        if attach is not None and self._distributed:
            attach(self)
        self._train_thread = threading.get_ident()
        store = default_store() if self._distributed and self.stall_factor is not None else None
        self._reporter = RankReporter(store, runner.rank, runner.world_size) if store is not None else None
        self._beat()
        self._stop_watching.clear()
        self._watcher = threading.Thread(target=self._watch, name="cockpit-health-guard", daemon=True)
        self._watcher.start()

    def after_train(self, runner: RunContext) -> None:
        if self._pending:
            self._read_pending(runner)
        if self._source is not None:
            self._source.remove_reader(self._read_values)
        self._stop_watching.set()
        self._suspended = True

    def after_run(self, runner: RunContext) -> None:
        self._stop_watching.set()

    def before_train_epoch(self, runner: RunContext) -> None:
        self._beat()

    def before_val(self, runner: RunContext) -> None:
        self._suspended = True

    def after_val(self, runner: RunContext) -> None:
        self._beat()

    def before_save_checkpoint(self, runner: RunContext, checkpoint: dict) -> None:
        self._last_tick = time.perf_counter()

    def after_load_checkpoint(self, runner: RunContext, checkpoint: Mapping[str, Any]) -> None:
        # A checkpoint saved while an alert was up holds it in the hub's info: it is stale now.
        if self.alert is None and runner.message_hub.get_info("guard_alert") is not None:
            runner.message_hub.pop_info("guard_alert")
        self._scalars = runner.message_hub.log_scalars
        self._pending.clear()
        self._beat()

    def after_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                         outputs: dict | None = None) -> None:
        # Every step passes here: a clock read and a deque append. The values are checked as the
        # RuntimeInfoHook publishes them (``_read_values``), at most ``device_read_interval`` steps late.
        now = _clock()
        if self._suspended:
            self._suspended = False
        else:
            self._step_times.append(now - self._last_tick)
        self._last_tick = now
        if self._source is not None:
            return
        # No RuntimeInfoHook: keep the loss tensors and read them together.
        if outputs and (loss := outputs.get("loss")) is not None:
            self._pending.append((runner.iter, loss.detach()))
            if len(self._pending) >= self.device_read_interval:
                self._read_pending(runner)
        if self._watch_grad:
            norm = getattr(runner.optim_wrapper, "last_grad_norm", None)
            if norm is not None and not math.isfinite(norm) and self.alert is None:
                self.trip(runner, "nonfinite", f"the gradient norm is {float(norm)}", runner.iter)

    def _read_values(self, runner: RunContext, step: int, values: dict[str, float]) -> None:
        """Check one step's published values (a ``RuntimeInfoHook`` reader)."""
        loss = values.get("loss")
        if loss is not None:
            if _NEG_INF < loss < self._upper:  # the common case: a few attribute reads and one comparison
                self._over = 0
                self._losses.append(loss)
                self._until_refresh -= 1
                if self._until_refresh <= 0:
                    self._refresh()
            else:
                self._check_loss(runner, loss, step)
        norm = values.get("grad_norm")
        if self._watch_grad and norm is not None and not math.isfinite(norm) and self.alert is None:
            self.trip(runner, "nonfinite", f"the gradient norm is {norm}", step)

    # --- checks -------------------------------------------------------------------------------
    def _read_pending(self, runner: RunContext) -> None:
        steps = [step for step, _ in self._pending]
        values = torch.stack([value.float() for _, value in self._pending]).tolist()  # the one sync
        self._pending.clear()
        for step, value in zip(steps, values, strict=True):
            self._check_loss(runner, value, step)

    def _check_loss(self, runner: RunContext, value: float, step: int) -> None:
        """The careful path: a non-finite value, a spike, or a value read from a tensor."""
        if not math.isfinite(value):
            if self._nan_loss_trips:
                self.trip(runner, "nonfinite", f"the loss is {value}", step)
            return
        if value >= self._upper:
            self._over += 1
            if self._over >= self.spike_patience:
                self._over = 0
                z = (value - self._center) / self._scale
                self.trip(runner, "spike", f"the loss {value:.4g} is {z:.1f} robust deviations above the median "
                                           f"{self._center:.4g} of the last {len(self._losses)}, and the "
                                           f"{self.spike_patience} losses before it were over the limit too", step)
                return  # not part of the normal spread
        else:
            self._over = 0
        self._losses.append(value)
        self._until_refresh -= 1
        if self._until_refresh <= 0:
            self._refresh()

    def _refresh(self) -> None:
        """The median and MAD of the window, and the spike limit they give (every ``refresh`` steps)."""
        self._until_refresh = self.refresh
        if self.spike_threshold is None or len(self._losses) < self.spike_min_history:
            self._upper = math.inf
            return
        ordered = sorted(self._losses)
        center = self._center = ordered[len(ordered) // 2]
        if self._first_center is None:
            self._first_center = center
        mad = sorted([v - center if v > center else center - v for v in ordered])[len(ordered) // 2]
        # A flat loss has no spread: allow a small one, so noise on it is no spike.
        self._scale = max(1.4826 * mad, 1e-3 * abs(center), 1e-12)
        progress = max(0.0, self._first_center - center)
        self._upper = center + max(self.spike_threshold * self._scale, self.spike_progress * progress)

    def _beat(self) -> None:
        self._last_tick = time.perf_counter()
        self._suspended = False

    # --- tripping -------------------------------------------------------------------------------
    def trip(self, runner: RunContext, kind: str, message: str, step: int, announce: bool = True) -> None:
        """Raise an alert and pause the run (one alert at a time: a second one waits for the first)."""
        if self.alert is not None:
            return
        self._note_checkpoints(runner)
        fallback = "stop" if self.fallback == "rollback" and self.rollbacks.get(kind, 0) >= 1 else self.fallback
        alert = {"kind": kind, "message": message, "step": int(step), "rank": runner.rank,
                 "choices": list(CHOICES), "fallback": fallback, "time": time.time(),
                 "deadline": time.time() + self.answer_timeout}
        self.alert = alert
        self._deadline = time.monotonic() + self.answer_timeout
        self._fallback_sent = False
        runner.steering.set_paused(True)
        if not announce:
            return
        runner.logger.warning(
            f"health guard tripped ({kind}) at iter {step + 1}: {message}. The run is PAUSED (Cockpit's health "
            f"guard; MMEngine would not pause). Answer with {', '.join(CHOICES)}; with no answer in "
            f"{self.answer_timeout:g} s: {fallback}. Turn the guard off with health_guard=None.")
        hub = runner.message_hub
        hub.update_info("guard_alert", alert)
        hub.publish(ev.GuardTripped, kind, message, int(step), CHOICES, fallback, alert["deadline"])
        if self.notifier.active and runner.is_main_process:
            self.notifier.notify({**alert, "run": hub.name, "work_dir": str(runner.work_dir)})

    def _clear(self, runner: RunContext) -> dict[str, Any] | None:
        alert, self.alert = self.alert, None
        self._deadline = math.inf
        self._losses.clear()  # the window restarts from the state the run goes on from
        self._upper, self._until_refresh = math.inf, self.spike_min_history
        if runner.message_hub.get_info("guard_alert") is not None:
            runner.message_hub.pop_info("guard_alert")
        runner.steering.set_paused(False)
        self._beat()  # the next step's time starts now, not before the pause
        return alert

    # --- the watcher thread ---------------------------------------------------------------------
    def _watch(self) -> None:
        runner = self._runner
        tick = max(0.02, min(0.5, self.answer_timeout / 20, self.stall_min_seconds / 20))
        while not self._stop_watching.wait(tick):
            try:
                self._watch_once(runner)
            except Exception:  # noqa: BLE001 - the watcher must outlive a bad moment
                runner.logger.exception("the health guard's watcher failed once")

    def _watch_once(self, runner: RunContext) -> None:
        if self._reporter is not None and self._reporter.due(now := time.perf_counter()):
            self._report(runner, now)
        if self.alert is not None:
            if not self._fallback_sent and time.monotonic() >= self._deadline and runner.is_main_process:
                self._fallback_sent = True
                name = {"rollback": ROLLBACK, "stop": STOP, "continue": CONTINUE}[self.alert["fallback"]]
                runner.logger.warning(f"health guard: nobody answered the {self.alert['kind']} alert in "
                                      f"{self.answer_timeout:g} s; applying the fallback: {name}")
                request = runner.steering.control.submit(name)
                if request.outcome == "rejected" and name != STOP:
                    runner.logger.warning(f"health guard: {name} was refused ({request.message}); stopping instead")
                    runner.steering.control.submit(STOP)
            return
        if runner.steering.paused:
            self._last_tick = time.perf_counter()  # a pause is no stall, nor is the step after it
            return
        if self.stall_factor is None or self._suspended or len(self._step_times) < 5:
            return
        median = statistics.median(list(self._step_times))
        limit = max(self.stall_min_seconds, self.stall_factor * median)
        idle = time.perf_counter() - self._last_tick
        if idle > limit:
            message = f"no iteration for {idle:.1f} s ({idle / max(median, 1e-9):.0f}x the median step of {median:.3g} s)"
            if self._reporter is not None:  # a hung rank holds every rank in a collective: name the one behind
                message += "; " + self._show_hung(runner)
            self.trip(runner, "stall", message, runner.iter)

    # --- hung ranks (rank_reports.py) ---------------------------------------------------------------
    def _report(self, runner: RunContext, now: float) -> None:
        """Write this rank's report; on rank 0 during a stall, refresh the published ``rank_health``."""
        where, waiting = training_position(self._train_thread)
        try:
            self._reporter.report(runner.iter, now - self._last_tick, where, waiting, now)
            if runner.is_main_process and self._hung_shown:  # until an all-reduce gets through again
                self._show_hung(runner)
        except Exception as error:  # noqa: BLE001 - a store gone (the run ending) must not end the guard
            self._reporter = None
            runner.logger.warning(f"health guard: per-rank reports stop ({type(error).__name__}: {error}); "
                                  "a hung rank will not be named")

    def _show_hung(self, runner: RunContext) -> str:
        """Name the ranks behind from every rank's report; rank 0 flags them in ``rank_health``."""
        reports = self._reporter.read()
        behind, text = ranks_behind(reports, time.time())
        if runner.is_main_process:
            self._hung_shown = True
            self._publish_reports(runner, reports, behind)
        return text

    def _publish_reports(self, runner: RunContext, reports: list, behind: list[int]) -> None:
        """``rank_health`` with each rank's ``hung``, ``idle`` and ``where`` from ``reports``."""
        rows = {row["rank"]: row for row in self.rank_health}
        health = []
        for rank in range(runner.world_size):
            entry = dict(rows.get(rank) or _blank_row(rank))
            report = reports[rank]
            entry.update(hung=rank in behind, idle=float(report["idle"]) if report else 0.0,
                         where=report["where"] if report else "")
            if report:
                entry["iter"] = int(report["iter"])
            health.append(entry)
        self.rank_health = health
        runner.message_hub.update_info("rank_health", health)

    # --- distributed health (steering.HealthProbe) ------------------------------------------------
    def health_row(self) -> list[float]:
        """This rank's figures for the agreement all-reduce (``ROW``)."""
        runner = self._runner
        steps = sorted(self._step_times) or [0.0]
        step = steps[len(steps) // 2]
        # The IterTimerHook's data time runs from its stamp after one step to the next step's start:
        # data loading and the hooks between, the part of a step where ranks do not wait on each other.
        history = self._scalars.get("train/data_time")
        host = history.mean() if history is not None else 0.0
        host = min(host, step) if math.isfinite(host) else 0.0
        data = history.current() if history is not None else 0.0
        alert = self.alert
        code = KINDS.index(alert["kind"]) + 1 if alert is not None and alert["kind"] in KINDS else 0
        return [step, host, step - host, data if math.isfinite(data) else 0.0, peak_memory_mb(),
                time.time(), float(runner.iter), float(code), float(alert["step"] + 1) if alert else 0.0]

    def receive_health(self, rows: list[list[float]]) -> None:
        """Every rank's row: flag stragglers, adopt another rank's alert, publish ``rank_health``."""
        runner = self._runner
        own = [row[1] + min(r[2] for r in rows) for row in rows]  # time outside the synchronised step
        median = statistics.median(own)
        health = []
        for rank, (row, own_time) in enumerate(zip(rows, own, strict=True)):
            entry = {name: row[index] for index, name in enumerate(ROW)}
            entry.update(rank=rank, iter=int(row[6]), own_time=own_time, hung=False, idle=0.0, where="",
                         alert=KINDS[int(row[7]) - 1] if row[7] else "",
                         straggler=bool(self.straggler_factor is not None and median > 0
                                        and own_time > self.straggler_factor * median and own_time - median > 1e-3))
            health.append(entry)
        self.rank_health = health
        self._hung_shown = False  # the collective got through: no rank holds the others up now
        for entry in health:
            if entry["straggler"] and entry["rank"] not in self._stragglers:
                self._stragglers.add(entry["rank"])
                message = (f"rank {entry['rank']} straggles: {entry['own_time']:.3g} s of its own per step, "
                           f"{entry['own_time'] / median:.2f}x the median rank's {median:.3g} s")
                runner.logger.warning(f"health guard: {message}")
                if self.straggler_action == "pause":
                    self.trip(runner, "straggler", message, runner.iter)
            elif not entry["straggler"]:
                self._stragglers.discard(entry["rank"])
        if self.alert is None:
            remote = next((e for e in health if e["alert"]), None)
            if remote is not None:
                self.trip(runner, remote["alert"], f"rank {remote['rank']} tripped its health guard",
                          int(rows[remote["rank"]][8]) - 1, announce=runner.is_main_process)
        if runner.is_main_process:
            runner.message_hub.update_info("rank_health", [
                {k: (round(v, 6) if isinstance(v, float) else v) for k, v in e.items()} for e in health])

    # --- the commands -------------------------------------------------------------------------------
    def commands(self) -> list[Command]:
        option = Arg("option", "'skip' also skips the batches up to the offending one; '*0.5' also scales the "
                               "learning rate", optional=True)
        return [
            Command(CONTINUE, "dismiss the health alert and train on from here", self._continue,
                    label="Guard: continue", when="alert"),
            Command(ROLLBACK, "resume from the newest checkpoint saved before the health alert "
                              "('skip' skips the bad batches, '*0.5' scales the lr)", self._rollback,
                    label="Guard: roll back…", args=(option,), parse=self._parse_rollback, when="alert",
                    confirm="Roll back to the last good checkpoint? Training since then is lost."),
            Command(STOP, "stop the run; the last good checkpoint is saved as the newest (never the bad state)",
                    self._stop, label="Guard: stop", parse=self._parse_stop, when="alert",
                    confirm="Stop the run at its last good checkpoint?"),
        ]

    def _active(self) -> dict[str, Any]:
        """The alert a command answers (on rank 0, which takes the commands), or ``CommandRejected``."""
        if self.alert is None:
            raise CommandRejected("no health alert is active")
        return self.alert

    def _note_checkpoints(self, runner: RunContext) -> None:
        for record in runner.message_hub.checkpoints:
            self._checkpoints[str(record["path"])] = int(record["iter"])

    def _good_checkpoint(self) -> Path | None:
        """The newest checkpoint on disk saved before the alert's iteration."""
        step = self._active()["step"]
        self._note_checkpoints(self._runner)
        good = [(done, path) for path, done in self._checkpoints.items() if done <= step and Path(path).is_file()]
        return Path(max(good)[1]) if good else None

    def _parse_rollback(self, args: Sequence[str]) -> tuple[str, str]:
        if len(args) > 1:
            raise CommandRejected(f"{ROLLBACK} takes at most one option: 'skip' or a factor like '*0.5'")
        option = args[0].replace(" ", "") if args else ""
        if option.startswith(("*", "x", "lr*=")):
            try:
                factor = float(option.removeprefix("lr*=").lstrip("*x"))
            except ValueError:
                raise CommandRejected(f"{option!r}: write the lr factor as '*0.5'") from None
            if not math.isfinite(factor) or factor <= 0:
                raise CommandRejected(f"the lr factor must be a finite number > 0, got {option!r}")
            option = f"*{factor:g}"
        elif option not in ("", "skip"):
            raise CommandRejected(f"{ROLLBACK}: the option must be 'skip' or a factor like '*0.5', got {option!r}")
        path = self._good_checkpoint()
        if path is None:
            raise CommandRejected(f"no checkpoint was saved before iter {self._active()['step'] + 1}; "
                                  f"answer with {CONTINUE} or {STOP}")
        return option, str(path)  # the path travels with the command, so every rank loads the same file

    def _parse_stop(self, args: Sequence[str]) -> tuple[str]:
        if args:
            raise CommandRejected(f"{STOP} takes no arguments")
        return (str(self._good_checkpoint() or ""),)

    def _continue(self, runner: RunContext) -> str:
        if runner.is_main_process:
            self._active()
        alert = self._clear(runner)
        return f"continuing past the {alert['kind'] if alert else 'health'} alert from iter {runner.iter}"

    def _rollback(self, runner: RunContext, option: str, path: str) -> str:
        alert = self._active() if runner.is_main_process else (self.alert or {"kind": "", "step": runner.iter})
        done = _resume(runner, path)
        self.rollbacks[alert["kind"]] = self.rollbacks.get(alert["kind"], 0) + 1
        if option == "skip":
            done += "; " + self._skip(runner, alert["step"] + 1)
        elif option.startswith("*"):
            done += "; " + _set(runner, f"lr*={option[1:]}")
        self._clear(runner)
        runner.logger.warning(f"health guard: rolled back ({alert['kind']} alert): {done}")
        return done

    def _skip(self, runner: RunContext, bad_done: int) -> str:
        """Move the data past the offending batch, keeping the checkpoint's weights."""
        loop = runner.train_loop
        position = loop.position()
        count = bad_done - position["iter"]
        if count <= 0:
            return "nothing to skip"
        batch = position["batch_in_epoch"] + count
        length = getattr(loop, "epoch_length", None)
        if runner.is_epoch_based and length is not None and batch >= length:
            return f"cannot skip {count} batches inside this epoch (it has {length}); none skipped"
        loop.restore_position(position["epoch"], position["iter"] + count, batch)
        if runner.optim_wrapper is not None:
            runner.optim_wrapper.count += count
        return f"skipped {count} batches (now at iter {position['iter'] + count})"

    def _stop(self, runner: RunContext, path: str) -> str:
        alert = self._active() if runner.is_main_process else (self.alert or {"kind": "health"})
        if path:
            _resume(runner, path)
        self._clear(runner)
        runner.steering.request_stop(f"health guard ({alert['kind']} alert)", save=bool(path))
        if path:
            return f"stopping at the last good checkpoint {Path(path).name}; it is saved again as the newest"
        return "stopping without a checkpoint (none was saved before the alert; the bad state is not saved)"


__all__ = ["CHOICES", "HealthGuardHook"]
