"""``CheckpointList``: the run's checkpoints, newest first, each with a button to resume from it."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from cockpit.widgets.notebook.state import RunState


class CheckpointRow(widgets.HBox):
    """One checkpoint on disk: its name, position and time, and a Resume button.

    Args:
        checkpoint: ``{'path', 'epoch', 'iter', 'time'}`` from the hub.
        on_resume: called with the checkpoint's path when the button is clicked.
    """

    def __init__(self, checkpoint: dict[str, Any], on_resume: Callable[[str], None]) -> None:
        self.path = str(checkpoint["path"])
        self.iter = int(checkpoint.get("iter", 0))
        when = checkpoint.get("time")
        clock = time.strftime("%H:%M:%S", time.localtime(when)) if when else ""
        self.label = widgets.HTML(
            f"<div title='{html.escape(self.path)}' style='font-size:12px;white-space:nowrap;overflow:hidden;"
            f"text-overflow:ellipsis'><b>{html.escape(Path(self.path).name)}</b>"
            f"<span style='color:#777'> &nbsp;epoch {checkpoint.get('epoch', 0)} · iter {self.iter} · {clock}</span></div>",
            layout=widgets.Layout(flex="1 1 auto", width="0", overflow="hidden", margin="0 8px 0 0"))
        self.resume = widgets.Button(description="Resume", icon="undo", tooltip=f"resume the run from {self.path}",
                                     layout=widgets.Layout(width="92px", flex="0 0 auto"))
        self.resume.on_click(lambda _: on_resume(self.path))
        super().__init__([self.label, self.resume], layout=widgets.Layout(width="100%", align_items="center"))

    def close(self) -> None:
        self.label.close()
        self.resume.close()
        super().close()


class CheckpointList(widgets.VBox):
    """The newest checkpoints still on disk, in a scrolling box under a title.

    Args:
        on_resume: called with a checkpoint's path when its Resume button is clicked.
        height: the box's maximum height.
        limit: how many of the newest checkpoints get a row.
    """

    def __init__(self, on_resume: Callable[[str], None], height: str = "150px", limit: int = 20) -> None:
        self.on_resume = on_resume
        self.limit = limit
        self.title = widgets.HTML("<b>Checkpoints</b>")
        self.empty = widgets.HTML("<span style='color:#888;font-size:12px'>None saved yet.</span>")
        self.box = widgets.VBox([self.empty], layout=widgets.Layout(max_height=height, overflow="auto"))
        self._shown: list[tuple[str, int]] = []
        super().__init__([self.title, self.box], layout=widgets.Layout(width="100%"))

    @property
    def rows(self) -> list[CheckpointRow]:
        """The rows, newest first."""
        return [row for row in self.box.children if isinstance(row, CheckpointRow)]

    def show(self, state: RunState, enabled: bool) -> None:
        """Rebuild the rows when the checkpoints on disk changed; set the buttons."""
        # Rotation (max_keep_ckpts) deletes old files: only those still there can be resumed.
        # A path saved twice (an epoch's checkpoint re-written after validation) is one row.
        latest: dict[str, dict[str, Any]] = {}
        for checkpoint in reversed(state.checkpoints):
            latest.setdefault(str(checkpoint["path"]), checkpoint)
        on_disk = [c for c in latest.values() if Path(c["path"]).is_file()]
        newest = on_disk[: self.limit]
        wanted = [(str(c["path"]), int(c.get("iter", 0))) for c in newest]
        if wanted != self._shown:
            old = self.rows
            self.box.children = [CheckpointRow(c, self.on_resume) for c in newest] or [self.empty]
            for row in old:
                row.close()
            self._shown = wanted
            removed = len(latest) - len(on_disk)
            notes = [f"newest {len(newest)} of {len(on_disk)}"] if len(on_disk) > len(newest) else []
            notes += [f"{removed} removed by rotation"] if removed else []
            self.title.value = "<b>Checkpoints</b>" + (
                f" <span style='color:#888'>({', '.join(notes)})</span>" if notes else "")
        for row in self.rows:
            row.resume.disabled = not enabled
