"""Whole-tab panels of the terminal cockpit: the run's overview, the system it runs on, and every scalar.

Each is built from a ``RunState`` alone: the app calls ``show(state)`` on every frame (under its
lock), and a panel redraws only when what it shows changed, and not at all while it is hidden.
"""

from cockpit.widgets.tui.panels.overview import OverviewPanel
from cockpit.widgets.tui.panels.scalars import ScalarGrid
from cockpit.widgets.tui.panels.system import SystemPanel

__all__ = ["OverviewPanel", "ScalarGrid", "SystemPanel"]
