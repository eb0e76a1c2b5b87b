"""The health guard's banner: what tripped, what the choices are, and what happens without an answer."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.widgets import Static

#: The guard's commands as the palette (ctrl+p) lists them.
CHOICES = {"guard-continue": "continue", "guard-rollback": "roll back", "guard-stop": "stop"}


def banner_text(alert: dict[str, Any], now: float | None = None) -> Text:
    """``⚠ health guard: <message> (iter N) | ctrl+p: Guard: continue · ... | without an answer at HH:MM:SS: <fallback>``."""
    now = time.time() if now is None else now
    text = Text(no_wrap=False)
    text.append("⚠ health guard: ", style="bold")
    text.append(str(alert.get("message") or alert.get("kind") or "the run needs a look"))
    step = alert.get("step")
    if isinstance(step, int):
        text.append(f" (iter {step})")
    text.append(" — paused.", style="bold")
    choices = [CHOICES.get(str(c), str(c)) for c in alert.get("choices") or CHOICES]
    text.append("  ctrl+p → Guard: " + " · ".join(choices))
    deadline, fallback = alert.get("deadline"), alert.get("fallback")
    if isinstance(deadline, (int, float)) and deadline > 0 and fallback:
        left = max(0, int(deadline - now))
        text.append(f"  |  no answer in {left // 60}:{left % 60:02d}: {fallback}")
    return text


class GuardBanner(Static):
    """Shown only while the health guard holds the run; the app rings the bell when it appears."""

    _shown: Text | None = None

    DEFAULT_CSS = """
    GuardBanner {
        height: auto;
        max-height: 3;
        background: $error 30%;
        color: $text;
        padding: 0 1;
        display: none;
    }
    """

    def show(self, alert: dict[str, Any] | None, now: float | None = None) -> None:
        """Show ``alert`` (None hides the banner); asked every frame, it changes the screen only when
        its text does (the countdown, once a second)."""
        if self.display != (alert is not None):
            self.display = alert is not None
        text = banner_text(alert, now) if alert is not None else None
        if alert is not None and text != self._shown:
            self.update(text)
        self._shown = text
