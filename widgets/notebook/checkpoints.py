"""``CheckpointList``: the run's checkpoints, newest first, each with a button per command that takes one."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from cockpit.widgets.notebook.confirm import ConfirmRow

from cockpit import commands
from cockpit.viewstate import CommandInfo, RunState


class CheckpointRow(widgets.HBox):
    """One checkpoint: its name, position and time, and a button for each command that takes a checkpoint.

    Args:
        checkpoint: ``{'path', 'epoch', 'iter', 'time'}`` from the hub; ``abandoned`` when a resume
            left its branch behind (drawn dimmed).
        commands: the run's commands that take a checkpoint (resume, and any a hook offers).
        on_click: called with the command and this row when a button is clicked.
    """

    def __init__(self, checkpoint: dict[str, Any], commands: tuple[CommandInfo, ...],
                 on_click: Callable[[CommandInfo, CheckpointRow], None]) -> None:
        self.path = str(checkpoint["path"])
        self.iter = int(checkpoint.get("iter", 0))
        when = checkpoint.get("time")
        clock = time.strftime("%H:%M:%S", time.localtime(when)) if when else ""
        self.abandoned = bool(checkpoint.get("abandoned"))
        branch = "abandoned branch · " if self.abandoned else ""
        self.label = widgets.HTML(
            f"<div title='{html.escape(self.path)}' style='font-size:12px;white-space:nowrap;overflow:hidden;"
            f"text-overflow:ellipsis;{'opacity:0.55' if self.abandoned else ''}'>"
            f"<b>{html.escape(Path(self.path).name)}</b><span style='color:#777'> &nbsp;{branch}epoch "
            f"{checkpoint.get('epoch', 0)} · iter {self.iter} · {clock}</span></div>",
            layout=widgets.Layout(flex="1 1 auto", width="0", overflow="hidden", margin="0 8px 0 0"))
        self.buttons: dict[str, widgets.Button] = {}
        for command in commands:
            button = widgets.Button(description=command.title, tooltip=f"{command.description}: {self.path}",
                                    layout=widgets.Layout(width="92px", flex="0 0 auto"))
            button.on_click(lambda _, command=command: on_click(command, self))
            self.buttons[command.name] = button
        super().__init__([self.label, *self.buttons.values()],
                         layout=widgets.Layout(width="100%", align_items="center"))

    def close(self) -> None:
        self.label.close()
        for button in self.buttons.values():
            button.close()
        super().close()


class CheckpointList(widgets.VBox):
    """The newest checkpoints still on disk, in a scrolling box under a title.

    Args:
        send: ``send(name, *args)`` submits a command to the run.
        height: the box's maximum height.
        limit: how many of the newest checkpoints get a row.
    """

    def __init__(self, send: Callable[..., None], height: str = "150px", limit: int = 20) -> None:
        self.limit = limit
        self.title = widgets.HTML("<b>Checkpoints</b>")
        self.empty = widgets.HTML("<span style='color:#888;font-size:12px'>None saved yet.</span>")
        self.confirm = ConfirmRow(send)
        self.box = widgets.VBox([self.empty], layout=widgets.Layout(max_height=height, overflow="auto"))
        self._shown: tuple = ()
        self._seen: dict[str, dict[str, Any]] = {}
        self._iteration: int | None = None  # the run's position, for the resume question
        super().__init__([self.title, self.confirm, self.box], layout=widgets.Layout(width="100%"))

    def listed(self, state: RunState) -> list[dict[str, Any]]:
        """The checkpoints to offer, newest first: every one the run saved that is still on disk.

        A live resume reloads the run's history from the checkpoint, which forgets the
        checkpoints saved after it; they are still good, and the terminal view lists them, so
        they stay here too, marked ``abandoned`` (their iterations are no longer the run's
        history). The run reports each checkpoint it deletes (rotation, a new best): those go.
        """
        rows = state.checkpoint_rows()
        for row in rows:
            self._seen[row["path"]] = row
        for path, _reason in state.removed_checkpoints:
            self._seen.pop(path, None)
        current = {row["path"] for row in rows}
        # The checkpoint a resume started from is on the run's history, though the history it
        # holds was saved just before it was.
        resumed_from = {_same_file(marker.get("detail", "")) for marker in state.markers
                        if marker.get("kind") == "resume"}
        others = [{**row, "abandoned": _same_file(path) not in resumed_from}
                  for path, row in self._seen.items() if path not in current and Path(path).is_file()]
        return sorted([*rows, *others], key=lambda row: row.get("time") or 0, reverse=True)

    @property
    def rows(self) -> list[CheckpointRow]:
        """The rows, newest first."""
        return [row for row in self.box.children if isinstance(row, CheckpointRow)]

    def show(self, state: RunState, enabled: bool) -> None:
        """Rebuild the rows when the checkpoints or the commands changed; set the buttons."""
        on_disk = self.listed(state)
        # Iterations done, as the progress line counts them (``iter`` is the current one's 0-based index).
        self._iteration = state.info["iter"] + 1 if isinstance(state.info.get("iter"), int) else None
        newest = on_disk[: self.limit]
        commands = tuple(c for c in state.commands if c.takes_checkpoint)
        wanted = (tuple((c["path"], int(c.get("iter", 0)), bool(c.get("abandoned"))) for c in newest), commands)
        if wanted != self._shown:
            old = self.rows
            self.box.children = [CheckpointRow(c, commands, self._click) for c in newest] or [self.empty]
            for row in old:
                row.close()
            self._shown = wanted
            removed = len(state.removed_checkpoints)
            abandoned = sum(1 for c in on_disk if c.get("abandoned"))
            notes = [f"newest {len(newest)} of {len(on_disk)}"] if len(on_disk) > len(newest) else []
            notes += [f"{abandoned} from an abandoned branch"] if abandoned else []
            notes += [f"{removed} removed by rotation"] if removed else []
            self.title.value = "<b>Checkpoints</b>" + (
                f" <span style='color:#888'>({', '.join(notes)})</span>" if notes else "")
        for row in self.rows:
            for command_name, button in row.buttons.items():
                command = state.command(command_name)
                button.disabled = not enabled
                button.layout.display = None if command is None or command.offered(state.status, state.guard_alert is not None) else "none"
        if not enabled:
            self.confirm.cancel()

    def _click(self, command: CommandInfo, row: CheckpointRow) -> None:
        question = command.question([Path(row.path).name])  # the row's tooltip has the whole path
        if question is None:
            self.confirm.send_command(command.name, row.path)
            return
        if command.name == commands.RESUME and self._iteration is not None and row.iter < self._iteration:
            question += (f" The run goes back from iter {self._iteration} to iter {row.iter}; the checkpoints "
                         "after it stay listed, as an abandoned branch.")
        self.confirm.ask(question, lambda: self.confirm.send_command(command.name, row.path))


def _same_file(path: str) -> str:
    """``path`` made comparable with another spelling of it (relative, with ``..``)."""
    return str(Path(path).resolve()) if path else ""
