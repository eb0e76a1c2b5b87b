"""The runs dashboard (``cockpit ls -i``): every run under a folder, attach to one, overlay several."""

from cockpit.widgets.tui.dashboard.app import DashboardApp

__all__ = ["DashboardApp"]
