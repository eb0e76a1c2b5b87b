"""The terminal cockpit against a real run: every key sends its command and the run reacts.

A training subprocess (``python -m cockpit.cli run cfg.py --no-tui``) serves its channel; the app
runs in-process under ``App.run_test()`` with a ``RunClient`` as its source and is driven by the
Pilot. What the run did is read back through a second ``RunClient`` (its snapshot) and the files
it wrote, never from the app alone. One run serves the keys that leave it going; resume and stop
each get a run of their own. The three start together, once per module, so their start-ups overlap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cockpit.widgets.tui import CockpitApp
from cockpit.widgets.tui.parts.plots import ScalarPlot
from cockpit.widgets.tui.screens.checkpoint import CheckpointPicker
from cockpit.widgets.tui.screens.confirm import ConfirmScreen
from cockpit.widgets.tui.screens.prompt import PromptScreen
from cockpit.widgets.tui.screens.quit import QuitScreen
from cockpit.widgets.tui.source import StaticSource
from support import child_env, write_child_config
from textual.css.query import NoMatches

from cockpit.channel.auth import CONNECTION_FILE, ConnectionError_
from cockpit.channel.client import RunClient

from .tui_fixtures import build_snapshot
from .tui_fixtures import until as wait_until

#: Narrow and short: the log is the only bottom tab shown and the aux plots fold away, so frames
#: are cheap and the Pilot's wait for an idle process after each key stays short.
SIZE = (100, 30)
ITERS_PER_EPOCH = 1000  # 8,000 samples in batches of 8: the main run's tests stay inside its first epoch
BURST = "svsvsv"  # keys that reach the app in one read
pytestmark = pytest.mark.timeout(90)


# --- the runs ---------------------------------------------------------------------------------
class Run:
    """A training subprocess serving its channel, and a probe client to read its state.

    ``sleep`` paces it at ~30 iterations/s: fast enough to see progress within a second, slow
    enough that the event stream leaves the test process idle now and then (the Pilot waits for
    an idle process after every key).
    """

    def __init__(self, folder: Path, max_epochs: int = 20, sleep: float = 0.03) -> None:
        self.folder = folder
        self.work = folder / "w"
        # Validation only when asked (the `v` key), so val/... in the state proves the command worked;
        # a SlowHook makes each iteration take ``sleep`` seconds, so commands land between iterations.
        config = write_child_config(folder, train_size=8 * ITERS_PER_EPOCH, max_epochs=max_epochs, seconds=sleep,
                                    val_interval=1000, log_interval=50, checkpoint_interval=1, max_keep_ckpts=2,
                                    seed=3)
        self.output = open(folder / "output.txt", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cockpit.cli", "run", str(config), "--no-tui", "--work-dir", str(self.work)],
            cwd=folder, stdout=self.output, stderr=subprocess.STDOUT, env=child_env())
        self._probe: RunClient | None = None

    @property
    def probe(self) -> RunClient:
        """The test's own client; the first use waits for the run to serve its channel."""
        if self._probe is None:
            self._probe = self._connect()
        return self._probe

    def _connect(self, timeout: float = 90) -> RunClient:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the run ended early ({self.process.returncode}): {self.log()}")
            if list(self.work.glob(f"*/{CONNECTION_FILE}")):
                try:
                    return RunClient.connect(self.work)
                except ConnectionError_:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"the run served no channel within {timeout} s: {self.log()}")

    def client(self, timeout: float = 5.0) -> RunClient:
        """A new client for an app (the app's feed thread and the probe must not share sockets)."""
        assert self.probe is not None
        return RunClient.connect(self.work, timeout=timeout)

    def log(self) -> str:
        return (self.folder / "output.txt").read_text(errors="replace")[-3000:]

    def snapshot(self) -> dict[str, Any]:
        return self.probe.snapshot(max_points=1)

    def iter(self) -> int:
        return int(self.snapshot()["info"].get("iter", 0))

    def checkpoints(self) -> list[Path]:
        return sorted(self.work.glob("iter_*.pth"))

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                if self._probe is not None:
                    try:
                        self._probe.command("stop", "nosave", wait=False)
                    except ConnectionError_:
                        pass
                else:
                    self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.send_signal(signal.SIGKILL)
                    self.process.wait(timeout=30)
        finally:
            if self._probe is not None:
                self._probe.close()
            self.output.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[dict[str, Run]]:
    """Three runs started together (their start-ups overlap), all stopped after the module.

    ``main`` serves the keys that leave a run going; ``resume`` and ``stop`` are changed for good.
    """
    started: dict[str, Run] = {}
    try:
        for name in ("main", "resume", "stop"):
            started[name] = Run(tmp_path_factory.mktemp(f"tui-{name}"))
        yield started
    finally:
        for run in started.values():
            run.stop()


@pytest.fixture
def run(runs) -> Run:
    return runs["main"]


# --- helpers ---------------------------------------------------------------------------------
class CockpitUnderTest(CockpitApp):
    """The real app, except that it skips frames once it is shutting down.

    ``CockpitApp.redraw`` runs on a timer that Textual stops only after it has taken the screens
    apart, so a frame that falls in between fails (``NoMatches: StatusLine``) and the test with
    it; ``test_leaving_never_draws_on_a_dismantled_screen`` shows that bug on the real class.
    """

    CSS_PATH = str(Path(inspect.getfile(CockpitApp)).with_name("app.tcss"))  # not beside this file

    def redraw(self) -> None:
        if self.is_running:
            super().redraw()


async def until(pilot, condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """``tui_fixtures.until`` with this module's patience (a live run on a loaded machine)."""
    return await wait_until(pilot, condition, what, timeout)


async def wait_off_app(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Like ``until`` for conditions checked in this process only (no app to pump)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for: {what}")


def locked(app: CockpitApp, read: Callable[[Any], Any]) -> Any:
    with app.lock:
        return read(app.state)


def loss_points(app: CockpitApp) -> int:
    return locked(app, lambda s: len(s.scalars["train/loss"].steps) if "train/loss" in s.scalars else 0)


def outcome(app: CockpitApp, name: str) -> dict[str, Any] | None:
    """The newest outcome event of command ``name`` the app received."""
    return locked(app, lambda s: next((o for o in reversed(s.outcomes) if o["name"] == name), None))


def command_keys(app: CockpitApp) -> list[str]:
    """The keys bound to the run's commands (bound once a frame has drawn the run's command list)."""
    return [key for key, active in app.active_bindings.items() if active.binding.action.startswith("command(")]


async def live(pilot, app: CockpitApp) -> None:
    """Wait until the app follows the run: its snapshot is loaded, the run is training and its keys work."""
    await until(pilot, lambda: locked(app, lambda s: s.status == "running" and "train/loss" in s.scalars),
                "the app to show the running run")
    await until(pilot, lambda: command_keys(app), "the keys of the run's commands")


class DaemonExecutor(concurrent.futures.ThreadPoolExecutor):  # asyncio accepts no other kind
    """Runs each job in a daemon thread of its own and never waits for them on shutdown.

    Textual runs thread workers in the event loop's default executor, which the loop joins when
    it closes and the interpreter joins at exit: a thread stuck for good in the app (a bug the
    tests below look for) would hang the whole session instead of failing one test.
    """

    def submit(self, fn, /, *args, **kwargs):  # noqa: ANN001, ANN201 - the Executor signature
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as error:  # noqa: BLE001 - handed to the future
                    future.set_exception(error)

        threading.Thread(target=run, daemon=True, name="cockpit-test-worker").start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


@pytest.fixture(autouse=True)
async def daemon_workers() -> None:
    asyncio.get_running_loop().set_default_executor(DaemonExecutor())


class Watched:
    """A ``RunClient`` as the app's source, counting the calls its threads are inside of.

    The app calls the client from worker threads that outlive it; the test closes the client
    once none is inside a call, and fails naming a call that never returns.
    """

    CALLS = frozenset({"snapshot", "poll_events", "command", "request"})

    def __init__(self, client: RunClient) -> None:
        self.client = client
        self.inside: dict[str, int] = dict.fromkeys(self.CALLS, 0)
        self._lock = threading.Lock()

    @property
    def busy(self) -> list[str]:
        with self._lock:
            return sorted(name for name, count in self.inside.items() if count)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name not in self.CALLS:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.inside[name] += 1
            try:
                return attribute(*args, **kwargs)
            finally:
                with self._lock:
                    self.inside[name] -= 1

        return call


_unclosed: list[RunClient] = []  # clients a stuck thread still uses: kept from the garbage collector


@contextlib.asynccontextmanager
async def cockpit(run: Run, size: tuple[int, int] = SIZE, frame_rate: float = 4.0,
                  timeout: float = 5.0) -> AsyncIterator[tuple[CockpitUnderTest, Any]]:
    """The app on its own client of ``run``, under ``run_test``, once it shows the running run.

    After the app is gone, no thread of it may be left inside the client (a call that never
    returns is a bug: it would also hold up the exit of ``cockpit run`` and ``cockpit attach``).
    """
    source = Watched(run.client(timeout=timeout))
    app = CockpitUnderTest(source, frame_rate=frame_rate)
    try:
        async with app.run_test(size=size) as pilot:
            await live(pilot, app)
            yield app, pilot
    finally:
        deadline = time.monotonic() + 3 * timeout
        while source.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if source.busy:
            _unclosed.append(source.client)
            raise AssertionError(f"a thread of the app that left never came back from RunClient.{source.busy}")
        source.client.close()


# --- plots -----------------------------------------------------------------------------------
async def test_plots_gain_points_as_the_run_goes(run):
    # Wide, so the loss plot has ~190 columns and draws every point of the first ~380 iterations.
    async with cockpit(run, size=(320, 50), frame_rate=10) as (app, pilot):
        plot = app.query_one("#loss-plot", ScalarPlot)
        first = await until(pilot, lambda: plot.drawn_points, "the loss plot to draw its first points")
        points = loss_points(app)
        await until(pilot, lambda: plot.drawn_points > first, "the loss plot to draw more points")
        await until(pilot, lambda: loss_points(app) > points + 20, "train/loss to grow in the app's state")
        assert app.query_one("#lr-plot", ScalarPlot).drawn_points > 0
        # What the app has is what the run has.
        steps = locked(app, lambda s: list(s.scalars["train/loss"].steps))
        assert steps == list(range(steps[-1] + 1))
        assert steps[-1] <= run.iter()


# --- keys that leave the run going ----------------------------------------------------------
async def test_s_saves_a_checkpoint(run):
    before = set(run.checkpoints())
    async with cockpit(run) as (app, pilot):
        await pilot.press("s")
        found = await until(pilot, lambda: set(run.checkpoints()) - before, "a new iter_*.pth in the work dir")
        result = await until(pilot, lambda: outcome(app, "save"), "the save outcome to reach the app")
        assert result["outcome"] == "applied", result
        (path,) = found
        assert str(path) in result["message"]
        await until(pilot, lambda: locked(app, lambda s: any(c["path"] == str(path) for c in s.checkpoints)),
                    "the checkpoint to appear in the app's state")


async def test_v_validates_mid_epoch(run):
    assert "val/accuracy/top1" not in run.snapshot()["scalars"], "the config must not validate by itself"
    async with cockpit(run) as (app, pilot):
        await pilot.press("v")
        await until(pilot, lambda: locked(app, lambda s: "val/accuracy/top1" in s.scalars),
                    "val/accuracy/top1 in the app's state")
        step = locked(app, lambda s: s.scalars["val/accuracy/top1"].steps[-1])
        assert step % ITERS_PER_EPOCH != 0, f"validation ran at an epoch end (iter {step}), not mid-epoch"
        result = await until(pilot, lambda: outcome(app, "val"), "the val outcome")
        assert result["outcome"] == "applied" and "accuracy/top1=" in result["message"], result
        await until(pilot, lambda: app.query_one("#val-plot", ScalarPlot).keys == ["val/accuracy/top1"],
                    "the validation plot to take the metric")
    assert "val/accuracy/top1" in run.snapshot()["scalars"]


async def test_p_pauses_and_p_again_continues(run):
    async with cockpit(run) as (app, pilot):
        await pilot.press("p")
        await until(pilot, lambda: locked(app, lambda s: s.status == "paused"), "the app to see the run paused")
        held = run.iter()
        await pilot.pause(1.0)
        assert run.iter() == held, "iterations went on while paused"
        assert run.snapshot()["status"] == "paused"
        await pilot.press("p")
        await until(pilot, lambda: run.iter() > held + 5, "iterations to go on after the second p")
        await until(pilot, lambda: locked(app, lambda s: s.status == "running"), "the app to see it running")
        names = locked(app, lambda s: [o["name"] for o in s.outcomes if o["outcome"] == "applied"])
        assert names[-2:] == ["pause", "continue"], names


async def test_l_sets_the_learning_rate(run):
    async with cockpit(run) as (app, pilot):
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the learning-rate prompt")
        await pilot.press("0", ".", "0", "5", "enter")
        confirm = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen,
                              "the question: set the learning rate to 0.05?")
        assert "0.05?" in confirm.question
        await pilot.press("y")
        await until(pilot, lambda: locked(app, lambda s: s.scalar("train/lr") == pytest.approx(0.05)),
                    "train/lr to be 0.05 in the app's state")
        result = outcome(app, "set")
        assert result is not None and result["outcome"] == "applied", result
        assert not isinstance(app.screen, PromptScreen)
    assert run.snapshot()["scalars"]["train/lr"]["values"][-1] == pytest.approx(0.05)


BURST_SCRIPT = """
import asyncio, json, os, sys, threading, time
from textual import events
from cockpit.channel.client import RunClient
from cockpit.widgets.tui import CockpitApp

work, keys = sys.argv[1], sys.argv[2]
client = RunClient.connect(work, timeout=1.0)  # a lost answer shows within a second
in_flight = {"command": 0}
lock = threading.Lock()
command = client.command

def counted(*args, **kwargs):
    with lock:
        in_flight["command"] += 1
    try:
        return command(*args, **kwargs)
    finally:
        with lock:
            in_flight["command"] -= 1

client.command = counted

async def main():
    app = CockpitApp(client)
    errors = []
    notify = app.notify

    def recording_notify(message, *args, **kwargs):
        if kwargs.get("severity") == "error":
            errors.append(f"{kwargs.get('title', '')}: {message}")
        return notify(message, *args, **kwargs)

    app.notify = recording_notify
    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + 30
        while not (app.state.status == "running" and "train/loss" in app.state.scalars and "s" in app.active_bindings):
            assert time.monotonic() < deadline, "the app never showed the run and its keys"
            await pilot.pause(0.05)
        seen = len(app.state.outcomes)
        for key in keys:
            app.post_message(events.Key(key, key))
        deadline = time.monotonic() + 10  # a command that got lost on the way never has an outcome
        while len(app.state.outcomes) < seen + len(keys) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(2.0)  # past the client's timeout: a lost answer has shown by now
        with app.lock:
            done = [(o["name"], o["outcome"]) for o in list(app.state.outcomes)[seen:]]
        print(json.dumps({"done": done, "errors": errors, "stuck": in_flight["command"]}), flush=True)
        os._exit(0)  # a stuck command thread would hold up the shutdown for good

asyncio.run(main())
"""


def test_keys_that_arrive_together_all_get_through_in_order(run):
    """Keys typed fast, pasted, or batched by SSH arrive in one read: ``s v s v s v`` here.

    Each key's command is sent from its own worker thread through the one ``RunClient``. The
    run must apply them in the order pressed, the app must not report any as "not sent", and no
    thread may be left waiting for an answer. The app runs in a process of its own, so a thread
    stuck for good cannot hang this one.
    """
    assert run.probe is not None
    result = subprocess.run([sys.executable, "-c", BURST_SCRIPT, str(run.work), BURST], capture_output=True,
                            text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["errors"], f"commands the run applied were reported as not sent: {report['errors']}"
    assert report["stuck"] == 0, f"{report['stuck']} command thread(s) still waiting for an answer that came"
    assert report["done"] == [[{"s": "save", "v": "val"}[key], "applied"] for key in BURST], report["done"]


async def test_q_then_d_detaches_and_the_run_goes_on(run):
    async with cockpit(run) as (app, pilot):
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "the quit screen")
        await pilot.press("d")
        await wait_off_app(lambda: app.return_value is not None, "the app to exit")
    assert app.return_value == "detach"
    at = run.iter()
    await wait_off_app(lambda: run.iter() > at + 10, "the run to go on after the detach")
    assert run.process.poll() is None
    assert run.snapshot()["status"] == "running"


# --- keys that change the run for good: runs of their own ---------------------------------
async def test_r_resumes_from_the_chosen_checkpoint(runs):
    run = runs["resume"]
    async with cockpit(run) as (app, pilot):
        await pilot.press("s")
        (path,) = await until(pilot, run.checkpoints, "the checkpoint to resume from")
        saved_at = int(path.stem.split("_")[1])
        await until(pilot, lambda: locked(app, lambda s: any(c["path"] == str(path) for c in s.checkpoints)),
                    "the app to know the checkpoint")
        await until(pilot, lambda: run.iter() > saved_at + 40, "the run to move on past the checkpoint")

        await pilot.press("r")
        picker = await until(pilot, lambda: isinstance(app.screen, CheckpointPicker) and app.screen,
                             "the checkpoint picker")
        table = picker.query_one("#picker")
        for _ in range(table.row_count):  # newest first; an epoch-end checkpoint may have come since
            if table.selected_path == str(path):
                break
            await pilot.press("down")
        assert table.selected_path == str(path), f"the picker does not offer {path.name}"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        before = run.iter()
        await pilot.press("y")
        result = await until(pilot, lambda: outcome(app, "resume"), "the resume outcome")
        assert result["outcome"] == "applied", result
        assert f"-> {saved_at} " in result["message"], result
        after = run.iter()
        assert saved_at <= after < before, f"the run did not go back: {before} -> {after} (checkpoint {saved_at})"
        # The app follows: its train/loss was cut back to the checkpoint and goes on from there.
        await until(pilot, lambda: locked(app, lambda s: s.scalars["train/loss"].steps[-1] < before),
                    "the app's train/loss to drop back")


async def test_q_then_x_stops_the_run_with_a_checkpoint(runs):
    run = runs["stop"]
    async with cockpit(run) as (app, pilot):
        await until(pilot, lambda: run.iter() > 20, "a few iterations")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "the quit screen")
        await pilot.press("x")
        await wait_off_app(lambda: app.return_value is not None, "the app to exit", timeout=30)
    assert app.return_value == "stop"
    assert run.process.wait(timeout=30) == 0, run.log()
    (checkpoint,) = run.checkpoints()
    assert int(checkpoint.stem.split("_")[1]) > 20
    assert re.search(r"stopped \(command '?stop'?\)", run.log()), run.log()


# --- leaving ---------------------------------------------------------------------------------
async def test_leaving_never_draws_on_a_dismantled_screen():
    """The redraw timer outlives the screen's widgets during shutdown (fast frames make it certain)."""
    for _ in range(3):
        app = CockpitApp(StaticSource(build_snapshot()), frame_rate=1000, live=False)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause(0.1)
        except NoMatches as error:
            raise AssertionError(f"a frame was drawn while the app shut down: {error}") from None
