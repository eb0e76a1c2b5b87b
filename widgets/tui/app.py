"""The terminal cockpit: a Textual app that watches and steers one run.

Data flows one way: a worker thread reads the run's events through the
source (a ``RunClient``) into a ``RunState``; a timer redraws the panes from it
a few times a second, never per event, and only the parts that changed. Keys
and the command palette send commands back through the same source. The app
never touches the model.

The run's commands are data (its ``commands`` list): their key bindings, the
footer, the palette and the help screen are generated from it, so a command a
hook declares gets a key like a built-in one. A command that takes a
checkpoint opens the checkpoint picker, one that takes text opens a prompt,
and one that asks first opens a confirmation. The app's own bindings are the
view-only actions (series, smoothing, log scale, zoom, help, quit).

Every way out asks first: ``q``, Ctrl+Q, Ctrl+C and the palette's Quit all open the
leave dialog (detach, or stop the run). When the run ends, the cockpit says how and
offers to leave. Given a run that is still starting (``starting``), it shows the
child's progress at once and follows the run as soon as it serves.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from cockpit.widgets.tui.commands import CockpitCommands
from cockpit.widgets.tui.panels import OverviewPanel, ScalarGrid, SystemPanel
from cockpit.widgets.tui.parts.checkpoints import CheckpointTable
from cockpit.widgets.tui.parts.guard import GuardBanner
from cockpit.widgets.tui.parts.hooks import HookTable
from cockpit.widgets.tui.parts.log import LogPane
from cockpit.widgets.tui.parts.plots import ScalarPlot
from cockpit.widgets.tui.parts.ranks import RankStrip
from cockpit.widgets.tui.parts.status import StatusLine
from cockpit.widgets.tui.screens.checkpoint import CheckpointPicker
from cockpit.widgets.tui.screens.confirm import ConfirmScreen
from cockpit.widgets.tui.screens.ended import EndedScreen
from cockpit.widgets.tui.screens.help import HelpScreen
from cockpit.widgets.tui.screens.prompt import PromptScreen
from cockpit.widgets.tui.screens.quit import QuitScreen
from cockpit.widgets.tui.screens.series import SeriesScreen
from cockpit.widgets.tui.screens.starting import Starting, StartingScreen
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingsMap
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from cockpit.channel.auth import ConnectionError_, StaleConnectionError
from cockpit.events import Status
from cockpit.viewstate import PARTS, CommandArg, CommandInfo, RunState

#: Below these sizes the layout folds (see app.tcss).
NARROW_WIDTH = 120
SHORT_HEIGHT = 34


def shown(widget: Any) -> bool:
    """Whether ``widget`` takes room on the screen now (a hidden tab or a folded column does not:
    it is drawn when it shows, as a tab switch or a resize draws every pane)."""
    return widget.region.area > 0


def footer_label(command: CommandInfo, short: bool) -> str:
    """A command's footer text: its label, or on a narrow screen the label's first word
    (``Save checkpoint`` -> ``Save``, ``Set learning rate…`` -> ``Set…``), so help and quit still fit."""
    if not short:
        return command.label
    first = command.label.split()[0].rstrip("…")
    return first + ("…" if command.label.endswith("…") else "")


class CockpitApp(App[str]):
    """Watch and steer a run.

    Args:
        source: a ``RunClient`` (or anything with ``snapshot``, ``poll_events`` and ``command``);
            None while ``starting``.
        frame_rate: redraws per second.
        live: follow the event stream (False: show the first snapshot only, for snapshot tests).
        clock: returns the time now (snapshot tests pass a fixed one).
        starting: a run still starting in a child process (``cockpit.views.ChildRun``): shown
            until it serves, then followed through the client it gives.

    The app's return value says how the user left: ``'detach'``, ``'stop'``, ``'ended'`` (the
    run ended and the user left), or ``'exited'`` (the starting run ended before it served).
    """

    CSS_PATH = "app.tcss"
    TITLE = "Cockpit"
    COMMANDS = App.COMMANDS | {CockpitCommands}
    # The view's own keys. The run's commands get theirs from its command list (``_bind_commands``).
    BINDINGS = [
        Binding("g", "series", "series"),
        Binding("m", "smooth", "smooth"),
        Binding("o", "log_scale", "log"),
        Binding("z", "zoom", "zoom"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit_cockpit", "quit"),
        # The whole-screen views (tabs): the run, its overview, the system, every scalar.
        Binding("1", "view('view-run')", "run", show=False),
        Binding("2", "view('view-overview')", "overview", show=False),
        Binding("3", "view('view-system')", "system", show=False),
        Binding("4", "view('view-scalars')", "scalars", show=False),
    ]
    #: The most times a second a plot, and a table, is drawn again while its data flows (the status
    #: line: every frame). A plot gains about a column a second, and drawing one is the dearest thing
    #: a frame does; a table's timings are means over the run, and a DataTable paints every row for
    #: one changed cell. These keep a view of a 20 it/s run near 10% of a core (benchmarks/tui.py).
    PLOT_RATE = 1.0
    TABLE_RATE = 0.25
    LOG_RATE = 1.0
    #: On a narrow screen the plot keys share one footer label and the footer leaves out ctrl+p (help
    #: names it), so every key still fits in 80 columns.
    PLOT_KEYS = Binding.Group("plot")

    def __init__(self, source: Any = None, frame_rate: float = 4.0, live: bool = True,
                 clock: Callable[[], float] = time.time, starting: Starting | None = None) -> None:
        super().__init__()
        if source is None and starting is None:
            raise ValueError("CockpitApp needs a source, or a run that is starting")
        self.clock = clock
        self.source = source
        self.starting = starting
        self.frame_rate = frame_rate
        self.live = live
        self.state = RunState()
        self.lock = threading.Lock()
        self._drawn_version = -1  # the state version drawn last; -1 redraws every pane
        self._ended_seen = False
        self._branches_drawn: Any = None
        self._pending_logs: list[tuple[float, str, str]] = []
        self._logs_at = -math.inf
        self._view_bindings = self._bindings.copy()
        self._main_keys = ["train/loss"]
        self._outbox: queue.SimpleQueue[tuple[str, tuple[str, ...]]] = queue.SimpleQueue()
        self._sender_stop = threading.Event()

    # --- layout ---------------------------------------------------------------------------------
    @property
    def main(self) -> Screen:
        """The cockpit's own screen, where the panes live: under any dialog, which leaves it in view."""
        return self.screen_stack[0]

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield RankStrip(id="ranks")
        yield GuardBanner(id="guard")
        with TabbedContent(id="views"):
            with TabPane("1 Run", id="view-run"):
                with Horizontal(id="main"):
                    with Vertical(id="plots"):
                        yield ScalarPlot(self._main_keys, "train loss", smoothing=0.9, id="loss-plot")
                        with Horizontal(id="aux"):
                            yield ScalarPlot(["train/lr"], "learning rate", id="lr-plot")
                            yield ScalarPlot([], "validation", id="val-plot")
                        with TabbedContent(id="bottom"):
                            with TabPane("Log", id="tab-log"):
                                yield LogPane(id="log")
                            with TabPane("Hooks", id="tab-hooks"):
                                yield HookTable(id="hooks-narrow")
                            with TabPane("Checkpoints", id="tab-checkpoints"):
                                yield CheckpointTable(id="checkpoints-narrow")
                    with Vertical(id="side"):
                        yield HookTable(id="hooks")
                        yield CheckpointTable(id="checkpoints")
            with TabPane("2 Overview", id="view-overview"):
                yield OverviewPanel(id="overview")
            with TabPane("3 System", id="view-system"):
                yield SystemPanel(id="system", clock=self.clock)
            with TabPane("4 Scalars", id="view-scalars"):
                yield ScalarGrid(lock=self.lock, id="scalars")
        yield Footer()

    def on_mount(self) -> None:
        self.main.query_one("#hooks", HookTable).border_title = "hooks, in execution order"
        self.main.query_one("#log", LogPane).border_title = "log"
        # The panes a frame draws, found once (a query a frame costs more than the frame's drawing).
        self._status = self.main.query_one(StatusLine)
        self._guard = self.main.query_one(GuardBanner)
        self._ranks = self.main.query_one(RankStrip)
        self._plots = list(self.main.query("#plots ScalarPlot"))  # the Run tab's (the grid has its own)
        self._panels = list(self.main.query("OverviewPanel, SystemPanel, ScalarGrid"))
        self._val_plot = self.main.query_one("#val-plot", ScalarPlot)
        self._hook_tables = list(self.main.query(HookTable))
        self._checkpoint_tables = list(self.main.query(CheckpointTable))
        self._layout_for(self.size.width, self.size.height)
        self.set_interval(1 / self.frame_rate, self.redraw)
        if self.source is None:
            self.push_screen(StartingScreen(self.starting), self._served)
        else:
            self._follow()

    def _follow(self) -> None:
        """Read the run's events and send its commands, from now on."""
        self.feed()
        threading.Thread(target=self._send_commands, name="cockpit-commands", daemon=True).start()

    def _served(self, client: Any) -> None:
        """The starting run serves (``client``), or its process ended first (None)."""
        if client is None:
            self.exit("exited")
            return
        self.source = client
        self._follow()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A view's tab: its panes drawn now (the grid takes the keys). A table's tab (hooks,
        checkpoints) takes most of a narrow screen; the log leaves room for the plot."""
        if event.tabbed_content.id == "views":
            if event.pane.id == "view-scalars":
                self.main.query_one(ScalarGrid).focus()  # its keys (arrows, [ ], /, enter) work at once
        else:
            event.tabbed_content.set_class(event.pane.id != "tab-log", "-tables")
        self._drawn_version = -1  # the tab's panes (and the plots, resized) drawn now

    def action_view(self, pane: str) -> None:
        """Show one of the whole-screen views (keys 1-4)."""
        self.main.query_one("#views", TabbedContent).active = pane

    def on_resize(self, event: Any) -> None:
        self._layout_for(event.size.width, event.size.height)
        self._drawn_version = -1  # plots re-fit to the new size

    def _layout_for(self, width: int, height: int) -> None:
        narrow = width < NARROW_WIDTH
        self.main.set_class(narrow, "-narrow")
        self.main.set_class(not narrow, "-wide")
        self.main.set_class(height < SHORT_HEIGHT, "-short")
        if not narrow:
            self.main.query_one("#bottom", TabbedContent).active = "tab-log"

    # --- data -----------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="feed")
    def feed(self) -> None:
        """Read the run: a snapshot, then its events, until the app closes or the run is gone."""
        worker = self.feed  # noqa: F841 - keeps the decorator's worker for cancellation checks
        from textual.worker import get_current_worker

        current = get_current_worker()
        try:
            snapshot = self.source.snapshot()
        except ConnectionError_ as error:
            self.call_from_thread(self.notify, f"cannot reach the run: {error}", severity="error", timeout=10)
            return
        with self.lock:
            self.state.load_snapshot(snapshot)
        while self.live and not current.is_cancelled:
            try:
                messages = self.source.poll_events(0.1)
                if messages:
                    with self.lock:
                        self.state.receive(messages)
                if self.state.needs_snapshot:  # events were missed, or the run reloaded its hub
                    snapshot = self.source.snapshot()
                    with self.lock:
                        self.state.load_snapshot(snapshot)
            except StaleConnectionError:
                with self.lock:
                    if not self.state.ended:
                        self.state.set_status(Status.DIED, "the run's process is gone")
                return
            except ConnectionError_:
                continue

    def redraw(self) -> None:
        """Bring every pane up to date with the state (a few times a second)."""
        status_line = getattr(self, "_status", None)
        if status_line is None or not status_line.is_attached:
            return  # not mounted yet, or the app is shutting down: nothing to draw on
        with self.lock:
            state = self.state
            status_line.show(state, now=self.clock())
            self._ranks.show(state)
            self._guard.show(state.guard_alert, now=self.clock())
            ring = state.take_guard_bell()
            logs = state.take_logs()
            outcomes = state.take_outcomes()
            changes = state.take_changes()
            if self._drawn_version == -1:
                changes = set(PARTS)  # a resize, or a plot option changed: every pane again
            if "commands" in changes:
                self._bind_commands(state.commands)
                picker = next((c for c in state.commands if c.takes_checkpoint), None)
                self.main.query_one("#checkpoints", CheckpointTable).border_title = (
                    "checkpoints  ★ best  ● latest" + (f"  ⏎ {picker.title.lower()}" if picker else ""))
            elif "status" in changes:
                self.refresh_bindings()  # a command offered in one status only (pause, continue)
            self._draw_plots(state, changes, state.take_changed_keys(), everything=self._drawn_version == -1)
            # The share of training time needs train/time; a checkpoint's row, the metric at it.
            everything = self._drawn_version == -1
            for table in self._hook_tables:
                self._update(table, bool(changes & {"hooks", "timings", "stage", "scalars"}), self.TABLE_RATE,
                             everything, lambda table=table: table.show(state))
            for table in self._checkpoint_tables:
                self._update(table, bool(changes & {"checkpoints", "info", "scalars"}), self.TABLE_RATE,
                             everything, lambda table=table: table.show(state))
            for panel in self._panels:
                panel.show(state)  # nothing while its tab is hidden; only what changed otherwise
            self._drawn_version = state.version
            ended, status, detail = state.ended, state.status, state.status_detail
        if ring:
            self.bell()
        # New lines lay the screen out again (the log grows): at most LOG_RATE times a second.
        self._pending_logs += logs
        if self._pending_logs and time.monotonic() - self._logs_at >= 1 / self.LOG_RATE:
            self.main.query_one(LogPane).add(self._pending_logs)
            self._pending_logs, self._logs_at = [], time.monotonic()
        for outcome in outcomes:
            severity = {"applied": "information", "rejected": "warning"}.get(outcome["outcome"], "error")
            self.notify(outcome["message"], title=f"{outcome['name']}: {outcome['outcome']}", severity=severity)
        if ended and not self._ended_seen:
            self._ended_seen = True
            self._offer_to_leave(status, detail)

    def _draw_plots(self, state: RunState, changes: set[str], keys: set[str], everything: bool) -> None:
        """Draw each plot whose data changed: its scalars, the markers, the branches (in the info)."""
        val_keys = sorted(k for k in state.scalars if k.startswith("val/") and not k.endswith("time"))
        val_plot = self._val_plot
        if val_plot.keys != val_keys:
            val_plot.keys = val_keys
            val_plot.stale = True
        branches = state.info.get("branches")  # a new list whenever the run publishes one
        new_branches, self._branches_drawn = branches is not self._branches_drawn, branches
        for plot in self._plots:
            changed = "markers" in changes or new_branches or bool(keys & set(plot.keys))
            self._update(plot, changed, self.PLOT_RATE, everything, lambda plot=plot: plot.draw(state))

    @staticmethod
    def _update(pane: Any, changed: bool, rate: float, everything: bool, draw: Callable[[], None]) -> None:
        """Draw ``pane`` when its data changed (now or since it was last drawn), it is on the screen,
        and ``rate`` allows: at most that many times a second while the data flows; ``everything``
        (a resize, a key that changes what a pane shows) draws it now."""
        pane.stale = getattr(pane, "stale", True) or changed or everything
        now = time.monotonic()
        if pane.stale and (everything or now - getattr(pane, "drawn_at", -math.inf) >= 1 / rate) and shown(pane):
            draw()
            pane.stale, pane.drawn_at = False, now

    def _offer_to_leave(self, status: str, detail: str) -> None:
        """The run ended: say so, and offer to leave (the cockpit stays, for a look, if the user wants)."""
        failed = status in (Status.FAILED, Status.DIED)
        if failed:
            self.main.query_one("#bottom", TabbedContent).active = "tab-log"
        with self.lock:
            from cockpit.views import progress_text

            where = progress_text(self.state)
        message = f"The run {status} at {where}" + (f":\n{detail}" if detail else ".")
        if isinstance(self.screen, QuitScreen):
            self.notify(message, severity="error" if failed else "information", timeout=30)
            return
        self.push_screen(EndedScreen(message + "\n\nLeave the cockpit?", failed),
                         lambda leave: leave and self.exit("ended"))

    # --- the run's commands -----------------------------------------------------------------------
    def _bind_commands(self, commands: tuple[CommandInfo, ...]) -> None:
        """Give each command that declares a key its binding, ahead of the view's own (footer order).

        Two commands may share a key when each is offered in a status the other is not (pause,
        continue): ``check_action`` lets the one offered now take the key. A key the view uses
        itself stays the view's; such a command is still in the palette.
        """
        view_keys = self._view_bindings.key_to_bindings
        short = self.size.width < NARROW_WIDTH
        bindings = BindingsMap(Binding(command.key, f"command({command.name!r})", footer_label(command, short),
                                       tooltip=command.description)
                               for command in commands if command.key and command.key not in view_keys)
        view = self._view_bindings
        if short:
            view = BindingsMap(dataclasses.replace(binding, group=self.PLOT_KEYS) if binding.key in "gmoz" else binding
                               for _, binding in self._view_bindings)
        footer = self.main.query_one(Footer)
        footer.compact = short
        footer.show_command_palette = not short
        self._bindings = BindingsMap.merge([bindings, view])
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A command's key works (and shows) only in the status the command is offered in, and
        never once the run has ended (it takes no more commands)."""
        if action == "command":
            state = self.state
            command = state.command(str(parameters[0]))
            return (command is not None and not state.ended
                    and command.offered(state.status, state.guard_alert is not None))
        return True

    def action_command(self, name: str) -> None:
        """A command's key: ask for what it needs, then send it."""
        command = self.state.command(name)
        if command is not None:
            self.run_command(command)

    def run_command(self, command: CommandInfo, args: tuple[str, ...] = ()) -> None:
        """Send ``command``: first ask for each argument it needs and, if it wants that, for a yes."""
        if self.state.ended:
            self.notify(f"the run has ended; cannot send {command.name}", severity="warning")
            return
        missing = command.required[len(args):]
        if missing:
            def answered(value: str | None) -> None:
                if value:
                    self.run_command(command, (*args, value))

            self.push_screen(self._ask(command, missing[0]), answered)
            return
        question = command.confirmation(args)
        if question is None:
            self.send(command.name, *args)
        else:
            self.push_screen(ConfirmScreen(question), lambda yes: yes and self.send(command.name, *args))

    def _ask(self, command: CommandInfo, arg: CommandArg) -> Screen:
        """The screen that asks for ``arg``: the checkpoint picker, or a one-line prompt."""
        if arg.kind == "checkpoint":
            return CheckpointPicker(self.state, self.lock, f"{command.title}: which checkpoint?")
        hint = arg.help or arg.name
        if arg.kind == "choice" and arg.choices:
            hint = f"{hint} ({', '.join(arg.choices)})"
        return PromptScreen(f"{command.title}: {command.description}", placeholder=hint)

    def on_checkpoint_table_chosen(self, message: CheckpointTable.Chosen) -> None:
        """Enter on a checkpoint: the first command that takes one (resume), for that checkpoint."""
        with self.lock:
            command = next((c for c in self.state.commands if c.takes_checkpoint), None)
        if command is None:
            self.notify("this run offers no command that takes a checkpoint", severity="warning")
        else:
            self.run_command(command, (message.path,))

    # --- commands -------------------------------------------------------------------------------
    def send(self, name: str, *args: str) -> None:
        """Send a command (in the order keys were pressed); its outcome arrives as an event."""
        self._outbox.put((name, args))

    def _send_commands(self) -> None:
        """The one thread that sends commands, one after another, so their order is kept.

        A daemon thread rather than a Textual worker, so it can never hold up the app's exit.
        """
        while not self._sender_stop.is_set():
            try:
                name, args = self._outbox.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.source.command(name, *args, wait=False)
            except ConnectionError_ as error:
                if not self._sender_stop.is_set():
                    self.call_from_thread(self.notify, str(error), title=f"{name}: not sent", severity="error")

    def on_unmount(self) -> None:
        self._sender_stop.set()  # the command sender stops with the app

    def get_system_commands(self, screen: Screen) -> Any:
        """Textual's palette entries, with Quit asking first like every other way out."""
        for command in super().get_system_commands(screen):
            if command.title == "Quit":
                yield SystemCommand("Quit", "Leave the cockpit: detach (the run goes on) or stop the run",
                                    self.action_quit_cockpit)
            else:
                yield command

    def perform(self, action: str) -> None:
        """Run ``action_<action>`` (for the command palette)."""
        getattr(self, f"action_{action}")()

    def action_series(self) -> None:
        with self.lock:
            keys = sorted(self.state.scalars)
        plot = self.main.query_one("#loss-plot", ScalarPlot)

        def chosen(selection: list[str] | None) -> None:
            if selection:
                plot.keys = selection
                self._drawn_version = -1

        self.push_screen(SeriesScreen(keys, plot.keys), chosen)

    def action_smooth(self) -> None:
        """``m``: the loss plot's next smoothing weight (0, 0.6, 0.9, 0.99, then 0 again)."""
        weight = self.main.query_one("#loss-plot", ScalarPlot).next_smoothing()
        self._drawn_version = -1
        self.notify(f"smoothing {weight:g}" if weight else "smoothing off", timeout=2)

    def action_log_scale(self) -> None:
        """``o``: the loss plot's other scale than the one shown (chosen from the data until then)."""
        log = self.main.query_one("#loss-plot", ScalarPlot).toggle_log()
        self._drawn_version = -1
        self.notify(f"log scale {'on' if log else 'off'}", timeout=2)

    def action_zoom(self) -> None:
        with self.lock:
            series = self.state.scalars.get("train/loss")
            last = series.steps[-1] if series and series.steps else 0
        window = max(100, last // 10)
        for plot in self.main.query(ScalarPlot):
            plot.recent = None if plot.recent else window
        self._drawn_version = -1
        recent = self.main.query_one("#loss-plot", ScalarPlot).recent
        self.notify(f"showing the last {recent} iterations" if recent else "showing the whole run", timeout=2)

    def action_help(self) -> None:
        with self.lock:
            commands = self.state.commands
        self.push_screen(HelpScreen(commands))

    async def action_quit(self) -> None:
        """Ctrl+Q (and anything else that asks the app to quit): the leave dialog, never a silent exit."""
        self.action_quit_cockpit()

    def action_help_quit(self) -> None:
        """Ctrl+C: the leave dialog, as a person pressing it expects."""
        self.action_quit_cockpit()

    def action_quit_cockpit(self) -> None:
        if isinstance(self.screen, QuitScreen):
            return  # asked already
        if self.state.ended:
            self.exit("ended")
            return

        def chosen(choice: str | None) -> None:
            if choice == "detach":
                self.exit("detach")
            elif choice == "stop" and self.source is None:
                self.starting.stop()  # not serving yet: the process itself is asked to end
                self.exit("stop")
            elif choice == "stop":
                self.notify("stopping the run: it finishes this iteration and saves", timeout=10)
                self._stop_then_exit()

        self.push_screen(QuitScreen(), chosen)

    @work(thread=True, group="commands")
    def _stop_then_exit(self) -> None:
        from cockpit import commands  # only now: the command table is not light to import

        try:
            # Leaving by stopping the run is the view's own way out (as Ctrl-C is the plain view's),
            # offered whatever the run's command list holds.
            self.source.command(commands.STOP, wait=True, timeout=600)
        except ConnectionError_ as error:
            self.call_from_thread(self.notify, str(error), severity="error")
        self.call_from_thread(self.exit, "stop")


def run_app(source: Any, on_exit: Callable[[str | None], None] | None = None) -> str | None:
    """Run the cockpit on ``source`` until the user leaves; returns how they left."""
    result = CockpitApp(source).run()
    if on_exit is not None:
        on_exit(result)
    return result
