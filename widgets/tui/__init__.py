"""The terminal cockpit (Textual). ``CockpitApp(source).run()``; see ``widgets/tui/app.py``.

The app is imported on first use, not with the package: ``cockpit ls -i`` imports
``cockpit.widgets.tui.dashboard``, which needs neither the app nor its plots to draw its first frame.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CockpitApp", "run_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(f"{__name__}.app"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
