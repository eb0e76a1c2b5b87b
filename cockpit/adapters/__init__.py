"""Adapters: the cockpit on runs of other frameworks, with one line and no rewrite.

- ``cockpit.adapters.mmengine.CockpitHook``: an MMEngine ``Runner`` (``custom_hooks=[dict(type='CockpitHook')]``);
- ``cockpit.adapters.lightning.CockpitCallback``: a ``lightning.Trainer`` (``callbacks=[CockpitCallback()]``);
- ``cockpit.adapters.hf.CockpitCallback``: a ``transformers.Trainer`` (``callbacks=[CockpitCallback()]``).

Each serves the run over the same channel as a Cockpit run (``cockpit.channel``), so
``cockpit attach``, ``cockpit ls``, ``cockpit ctl``, the terminal UI and the notebook's
``Cockpit.attach`` work on it unchanged. ``base.AdaptedRun`` holds what the three share.

Importing this package imports no framework: each adapter module imports its own, and only
it (the extras ``cockpit[mmengine]``, ``cockpit[lightning]`` and ``cockpit[hf]`` install them).
"""

#: The environment variable naming the file where a run announces its folder (``cockpit run --script``):
#: the adapter writes ``{"run_dir": ..., "pid": ...}`` there once it serves.
ANNOUNCE_VARIABLE = "COCKPIT_ANNOUNCE"

__all__ = ["ANNOUNCE_VARIABLE"]
