"""``CheckpointList``: the run's checkpoints, newest first, each with a button per command that takes one."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from cockpit.widgets.notebook.confirm import ConfirmRow

from cockpit.viewstate import CommandInfo, RunState


class CheckpointRow(widgets.HBox):
    """One checkpoint: its name, position and time, and a button for each command that takes a checkpoint.

    Args:
        checkpoint: ``{'path', 'epoch', 'iter', 'time'}`` from the hub.
        commands: the run's commands that take a checkpoint (resume, and any a hook offers).
        on_click: called with the command and the checkpoint's path when a button is clicked.
    """

    def __init__(self, checkpoint: dict[str, Any], commands: tuple[CommandInfo, ...],
                 on_click: Callable[[CommandInfo, str], None]) -> None:
        self.path = str(checkpoint["path"])
        self.iter = int(checkpoint.get("iter", 0))
        when = checkpoint.get("time")
        clock = time.strftime("%H:%M:%S", time.localtime(when)) if when else ""
        self.label = widgets.HTML(
            f"<div title='{html.escape(self.path)}' style='font-size:12px;white-space:nowrap;overflow:hidden;"
            f"text-overflow:ellipsis'><b>{html.escape(Path(self.path).name)}</b>"
            f"<span style='color:#777'> &nbsp;epoch {checkpoint.get('epoch', 0)} · iter {self.iter} · {clock}</span></div>",
            layout=widgets.Layout(flex="1 1 auto", width="0", overflow="hidden", margin="0 8px 0 0"))
        self.buttons: dict[str, widgets.Button] = {}
        for command in commands:
            button = widgets.Button(description=command.title, tooltip=f"{command.description}: {self.path}",
                                    layout=widgets.Layout(width="92px", flex="0 0 auto"))
            button.on_click(lambda _, command=command: on_click(command, self.path))
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
        super().__init__([self.title, self.confirm, self.box], layout=widgets.Layout(width="100%"))

    @property
    def rows(self) -> list[CheckpointRow]:
        """The rows, newest first."""
        return [row for row in self.box.children if isinstance(row, CheckpointRow)]

    def show(self, state: RunState, enabled: bool) -> None:
        """Rebuild the rows when the checkpoints or the commands changed; set the buttons."""
        # The run reports each checkpoint it deletes (rotation, a new best), so every row can be used.
        on_disk = state.checkpoint_rows()
        newest = on_disk[: self.limit]
        commands = tuple(c for c in state.commands if c.takes_checkpoint)
        wanted = (tuple((c["path"], int(c.get("iter", 0))) for c in newest), commands)
        if wanted != self._shown:
            old = self.rows
            self.box.children = [CheckpointRow(c, commands, self._click) for c in newest] or [self.empty]
            for row in old:
                row.close()
            self._shown = wanted
            removed = len(state.removed_checkpoints)
            notes = [f"newest {len(newest)} of {len(on_disk)}"] if len(on_disk) > len(newest) else []
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

    def _click(self, command: CommandInfo, path: str) -> None:
        self.confirm.request(command, [path])
