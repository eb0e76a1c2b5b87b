"""The terminal cockpit (Textual). ``CockpitApp(source).run()``; see ``widgets/tui/app.py``."""

from cockpit.widgets.tui.app import CockpitApp, run_app

__all__ = ["CockpitApp", "run_app"]
