"""The ``cockpit`` command: ``run``, ``attach``, ``ls``, ``ctl`` and ``hooks``.

The processes that only show or steer a run never import torch, so they start at once:
``attach``, ``ls``, ``ctl``, ``--help``, and ``run`` in a terminal, whose training runs in a
child process of its own session while this one shows it. Only the training processes (and
``hooks``, which builds the run) load the config, torch and the model.

Exit codes: see ``EXIT_CODES`` (printed by ``cockpit --help``).

- ``entry``: ``main``: parse, dispatch, each kind of error to its message and exit code.
- ``parser``: the argument parser, ``--listen`` addresses, a run's options as a command line.
- ``resume``: loading a run's config and settling what a resume continues from.
- ``fork``: ``--fork-from``: the fork's own work dir, its parent, what it changed.
- ``config_diff``: comparing a checkpoint's config with the one a resume would use.
- ``train``: ``run`` training in this process, or through torchrun.
- ``show``: ``run`` in a terminal (training in a child process), ``attach``, ``ls``, ``ctl``, ``hooks``.
- ``common``: exit codes, help texts, run files.
"""

from cockpit.cli.entry import main

__all__ = ["main"]
