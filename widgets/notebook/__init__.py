"""The notebook cockpit: a live ipywidgets + plotly view of a training run, with its controls.

``Cockpit.from_cfg(...)`` (or ``Cockpit(runner)``) trains in this kernel;
``Cockpit.attach(run_folder)`` shows a run started with ``cockpit run``.
"""

from cockpit.widgets.notebook.cockpit import Cockpit, RunPausedError

__all__ = ["Cockpit", "RunPausedError"]
