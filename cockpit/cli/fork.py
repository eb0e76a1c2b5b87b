"""``cockpit run cfg.py --fork-from CHECKPOINT``: a new run that starts where another run's checkpoint is.

A fork is MMEngine's ``load_from=CHECKPOINT, resume=True`` (weights, optimizer, schedulers,
position and the hub's history all come from the file) with the config and ``--cfg-options``
given now, in a work dir of its own, so the parent's checkpoints are never overwritten, rotated
or replaced as the best. A ``--resume`` refuses a changed config; a fork is how options change.

The fork records its parent: ``lineage.json`` in its run folder, and the hub's ``lineage`` info
(``{"parent": <run folder>, "checkpoint": <path>, "forked_at": <iteration>}``), which its
checkpoints carry, so a fork resumed later still knows where it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cockpit.cli.common import UsageError, read_runs


def fork_work_dir(parent_work_dir: Path, checkpoint: Path) -> Path:
    """A work dir beside the parent's that no run has yet: ``<parent>-fork-<checkpoint stem>[-N]``."""
    base = parent_work_dir.parent / f"{parent_work_dir.name}-fork-{checkpoint.stem}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def check_fork_work_dir(work_dir: Path, checkpoint_folders: list[Path], checkpoint: Path) -> None:
    """Refuse a fork into a folder that holds the parent's checkpoints (its saves would replace them).

    Raises:
        UsageError: naming the folder and what to write instead.
    """
    taken = {checkpoint.parent.resolve(), *(folder.resolve() for folder in checkpoint_folders)}
    if work_dir.resolve() in taken:
        raise UsageError(f"--fork-from {checkpoint.name} with --work-dir {work_dir}: that folder holds the parent's "
                         "checkpoints, which a fork must not overwrite or rotate; give another --work-dir, or none "
                         "(a fork gets <work dir>-fork-<checkpoint> of its own)")


def parent_run_folder(checkpoint: Path, meta: dict[str, Any]) -> Path | None:
    """The run folder of the run that wrote ``checkpoint``, if it can be told.

    The run whose ``run.json`` names it as its last checkpoint; else the newest run folder beside it
    that started (its resolved config was written) before the checkpoint was saved.
    """
    runs = [run for run in read_runs(checkpoint.parent, depth=1) if not run.problem]
    for run in runs:
        if run.last_checkpoint and Path(run.last_checkpoint).resolve() == checkpoint.resolve():
            return run.folder
    saved = meta.get("time")
    if not isinstance(saved, (int, float)):
        return None
    started = []
    for run in runs:
        configs = list(run.folder.glob("*.resolved.py")) or list(run.folder.glob("*.py"))
        if configs and min(path.stat().st_mtime for path in configs) <= saved:
            started.append((min(path.stat().st_mtime for path in configs), run.folder))
    return max(started)[1] if started else None


def optimizer_options(changes: list[str]) -> frozenset[str]:
    """The optimizer settings (``lr``, ``momentum``...) among a fork's changes (``config_differences`` lines)."""
    prefix = "optim_wrapper.optimizer."
    keys = (line.split(":", 1)[0] for line in changes)
    return frozenset(key[len(prefix):] for key in keys if key.startswith(prefix) and "." not in key[len(prefix):]
                     and key != prefix + "type")


def lineage(checkpoint: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """What a fork records of its parent (``forked_at`` is the checkpoint's iteration)."""
    parent = parent_run_folder(checkpoint, meta)
    forked_at = meta.get("iter")
    return {"parent": str(parent) if parent is not None else None, "checkpoint": str(checkpoint.resolve()),
            "forked_at": forked_at if isinstance(forked_at, int) else None}


__all__ = ["check_fork_work_dir", "fork_work_dir", "lineage", "optimizer_options", "parent_run_folder"]
