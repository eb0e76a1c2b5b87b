"""Loading the config of a ``run``, and settling what a resume continues from, before anything is made."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.cli.common import (
    RUN_FILE,
    UsageError,
    one_line,
    printable_text,
    read_run,
    read_runs,
)
from cockpit.cli.config_diff import config_differences
from cockpit.errors import CheckpointError, ConfigError


@dataclass
class Plan:
    """What a training process runs: the config, its work dir, and what a resume reads."""

    cfg: Any
    work_dir: Path
    run_folder: Path | None = None  # the run folder --resume named
    checkpoint: Path | None = None  # the checkpoint a resume reads first (None: no resume, or not checked)
    complete: str = ""  # the checkpoint is the end of the run: what to say instead of training
    notes: list[str] = field(default_factory=list)  # warnings to print before training
    lineage: dict[str, Any] | None = None  # a fork's parent and what it changed (--fork-from)


def _run_folder(path: Path) -> Path:
    """The run folder ``--resume`` names: that folder, or the newest run in a work dir.

    Raises:
        UsageError: the folder holds no run.
    """
    if (path / RUN_FILE).is_file() or any(path.glob("*.resolved.py")):
        return path
    runs = [run for run in read_runs(path, depth=1) if not run.problem]
    if not runs:
        raise UsageError(f"--resume {path}: no run folder there (a run folder holds run.json and the resolved "
                         "config); `cockpit ls` lists the runs, or give the config: cockpit run CONFIG --resume")
    return runs[0].folder


def _folder_config(run_folder: Path, options: list[str]) -> Any:
    """The config a run folder's run trained with: its resolved copy, classes read from the verbatim copy.

    The resolved file names classes defined in the config as ``<config name>.<Class>``; taking the
    verbatim copy beside it as the config's file makes those importable, and gives the run the
    config's own name (and the next run folder the same two copies).
    """
    from cockpit.config import Config

    resolved = sorted(run_folder.glob("*.resolved.py"))
    if not resolved:
        raise ConfigError(f"{run_folder} holds no resolved config (*.resolved.py), so it cannot be resumed by "
                          "its folder", key="--resume",
                          fix="give the config as well: cockpit run CONFIG --resume (or --resume CHECKPOINT)")
    loaded = Config.fromfile(resolved[0])
    verbatim = run_folder / (resolved[0].name.removesuffix(".resolved.py") + ".py")
    cfg = Config(dict(loaded), filename=str(verbatim if verbatim.is_file() else resolved[0]))
    if options:
        cfg.merge_from_options(options)
    return cfg


def checkpoint_folders(cfg: Mapping, work_dir: Path) -> list[Path]:
    """Where checkpoints of this run are: ``CheckpointHook(out_dir=...)`` (MMEngine's ``out_dir/<work dir
    name>``), then the work dir."""
    hook = (cfg.get("default_hooks") or {}).get("checkpoint") if isinstance(cfg.get("default_hooks"), Mapping) else None
    out_dir = hook.get("out_dir") if isinstance(hook, Mapping) else None
    folders = [work_dir]
    if isinstance(out_dir, str) and Path(out_dir).resolve() != work_dir:
        folders.insert(0, Path(out_dir).resolve() / work_dir.name)
    return folders


def _find_checkpoint(name: str, folders: list[Path]) -> Path:
    """The checkpoint ``name`` means: a path, or a name in the checkpoint folders (before the current folder).

    Raises:
        CheckpointError: naming where it looked and what is there.
    """
    path = Path(name).expanduser()
    if path.is_absolute():
        found = path if path.is_file() else None
    else:
        found = next((folder / path for folder in folders if (folder / path).is_file()), None)
        found = found or (path.resolve() if path.is_file() else None)
    if found is None:
        error = CheckpointError(f"checkpoint {name} does not exist (looked in "
                                f"{', '.join(str(f) for f in folders)} and the current folder)")
        present = sorted({p.name for folder in folders if folder.is_dir() for p in folder.glob("*.pth")})
        error.hint = (f"the work dir holds {', '.join(present[:8])}{', ...' if len(present) > 8 else ''}; "
                      "--resume alone takes the newest" if present else "--resume alone takes the newest checkpoint")
        raise error
    return found


def prepare(args: argparse.Namespace) -> Plan:
    """Load the config and settle what a resume continues from, checking it before anything is made.

    Raises:
        ConfigError, CheckpointError, UsageError: what cannot work, before a run folder exists.
    """
    from cockpit.config import Config

    run_folder = None
    if isinstance(args.resume, str) and Path(args.resume).expanduser().is_dir():
        run_folder = _run_folder(Path(args.resume).expanduser().resolve())
    if args.config is not None:
        cfg = Config.fromfile(args.config, args.cfg_options or None)
    elif run_folder is not None:
        cfg = _folder_config(run_folder, args.cfg_options)
    else:
        raise UsageError(f"--resume {args.resume}: not a run folder; give the config too: "
                         f"cockpit run CONFIG --resume {args.resume}")
    if "LOCAL_RANK" in os.environ and cfg.get("launcher", "none") == "none":
        cfg["launcher"] = "pytorch"  # started by torchrun
    if getattr(args, "fork_from", None):
        return _prepare_fork(args, cfg)
    if args.work_dir:
        work_dir = Path(args.work_dir)
    elif run_folder is not None:
        work_dir = run_folder.parent
    else:
        work_dir = _config_work_dir(cfg)
    work_dir = work_dir.resolve()
    cfg["work_dir"] = str(work_dir)
    plan = Plan(cfg, work_dir, run_folder)
    if args.resume is None:
        return plan
    folders = checkpoint_folders(cfg, work_dir)
    if run_folder is not None:
        plan.checkpoint = _run_folder_checkpoint(run_folder, folders, plan.notes)
    elif isinstance(args.resume, str):
        plan.checkpoint = _find_checkpoint(args.resume, folders)
    if plan.checkpoint is not None:
        cfg["resume"], cfg["load_from"] = str(plan.checkpoint), None
    else:
        cfg["resume"] = True
        if run_folder is not None:
            cfg["load_from"] = None
    if not args.checked:  # a torchrun worker: its launcher checked it already
        _check_resume(plan, args)
    return plan


def _config_work_dir(cfg: Mapping) -> Path:
    """The work dir a config names, else MMEngine's ``work_dirs/<config name>``."""
    return Path(cfg.get("work_dir") or Path("work_dirs") / Path(cfg.filename).stem).resolve()


def _prepare_fork(args: argparse.Namespace, cfg: Any) -> Plan:
    """A fork: the checkpoint (a path, or a name in the config's work dir) checked, a work dir of its own.

    Raises:
        CheckpointError: the checkpoint is missing, unreadable or not a training checkpoint.
        UsageError: ``--work-dir`` is where the parent's checkpoints are.
    """
    from cockpit.checkpoint import check_cockpit_checkpoint, load_checkpoint
    from cockpit.cli.fork import check_fork_work_dir, fork_work_dir, lineage

    parent_folders = checkpoint_folders(cfg, _config_work_dir(cfg))
    try:
        checkpoint = _find_checkpoint(args.fork_from, parent_folders).resolve()
        meta = check_cockpit_checkpoint(load_checkpoint(checkpoint, trusted=bool(args.trust_checkpoint)),
                                        checkpoint)["meta"]
    except CheckpointError as error:
        error.hint = ("fork from a complete checkpoint of the parent run: a path, or a name in "
                      f"{parent_folders[-1]} (`cockpit ls` shows each run's last checkpoint)")
        raise
    work_dir = Path(args.work_dir).resolve() if args.work_dir else fork_work_dir(checkpoint.parent, checkpoint)
    check_fork_work_dir(work_dir, parent_folders, checkpoint)
    cfg["work_dir"] = str(work_dir)
    # MMEngine's way to resume from a file outside the work dir: load_from names it, resume=True.
    cfg["load_from"], cfg["resume"] = str(checkpoint), True
    changes = config_differences(meta.get("cfg"), cfg.pretty_text)
    plan = Plan(cfg, work_dir, checkpoint=checkpoint, lineage={**lineage(checkpoint, meta), "changed": changes})
    done = _finished_at(cfg, meta)
    if done:
        length = resume_command(plan, args, longer=True).rsplit(" --cfg-options ", 1)[1]
        plan.complete = (f"cockpit: nothing to train: {checkpoint.name} is at {done}, the end of the run the fork "
                         f"would make. Make it longer: add --cfg-options {length}")
    return plan


def _run_folder_checkpoint(run_folder: Path, folders: list[Path], notes: list[str]) -> Path | None:
    """The newest checkpoint the run in ``run_folder`` wrote (``run.json``), if it is still there and in
    the run's checkpoint folders; else None (the newest in the work dir)."""
    run = read_run(run_folder / RUN_FILE)
    if not run.last_checkpoint:
        return None
    from cockpit.checkpoint import is_inside

    path = Path(run.last_checkpoint)
    if not is_inside(path, folders) or not path.is_file():
        notes.append(f"{run_folder.name}'s last checkpoint {printable_text(str(path))} is gone or outside its "
                     "checkpoint folders; resuming from the newest one in the work dir")
        return None
    return path


def _peek(plan: Plan, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The checkpoint a resume reads first, and its meta: the one named, or the newest that loads."""
    from cockpit.checkpoint import (
        candidate_checkpoints,
        check_cockpit_checkpoint,
        load_checkpoint,
    )

    trusted = bool(args.trust_checkpoint)
    if plan.checkpoint is not None or plan.cfg.get("load_from"):
        path = plan.checkpoint or Path(plan.cfg["load_from"])
        return path, check_cockpit_checkpoint(load_checkpoint(path, trusted=trusted), path)["meta"]
    failures = []
    for candidate in candidate_checkpoints(plan.work_dir, checkpoint_folders(plan.cfg, plan.work_dir)[:-1]):
        try:
            return candidate, check_cockpit_checkpoint(load_checkpoint(candidate, trusted=trusted), candidate)["meta"]
        except CheckpointError as error:
            failures.append(one_line(error))
    error = CheckpointError(f"--resume: nothing to resume from in {plan.work_dir} "
                            f"({'; '.join(failures) if failures else 'no checkpoint files'})")
    error.hint = "start without --resume for a fresh run, or name a checkpoint: --resume PATH"
    raise error


def _check_resume(plan: Plan, args: argparse.Namespace) -> None:
    """Refuse a resume that cannot work or would train with another config; note a run already complete."""
    path, meta = _peek(plan, args)
    # Only a checkpoint Cockpit wrote: MMEngine's record their config in their own layout, and
    # MMEngine resumes them whatever the config says.
    ours = "cockpit_version" in meta
    differences = config_differences(meta.get("cfg"), plan.cfg.pretty_text) if ours else []
    if differences:
        shown = "\n".join(f"    {line}" for line in differences[:12])
        more = f"\n    ... and {len(differences) - 12} more" if len(differences) > 12 else ""
        if not args.force:
            error = CheckpointError(f"resume refused: the config differs from the one {path.name} was trained "
                                    f"with:\n{shown}{more}")
            error.hint = (f"resume with the run's own config: {resume_command(plan, args, path)}; to train on "
                          f"with the changed options, fork a new run from it: cockpit run "
                          f"{args.config or plan.cfg.filename} --fork-from {path}"
                          + (f" --cfg-options {' '.join(args.cfg_options)}" if args.cfg_options else "")
                          + "; or pass --force to resume with this one in place")
            raise error
        plan.notes.append(f"resuming with a config that differs from {path.name}'s (--force):\n{shown}{more}")
    done = _finished_at(plan.cfg, meta)
    if done:
        plan.complete = (f"cockpit: the run is complete: {path.name} is at {done}, the end of the run, so there "
                         f"is nothing to train. To train further, make it longer and resume:\n"
                         f"  {resume_command(plan, args, path, longer=True)}")
    plan.checkpoint = plan.checkpoint or path


def _finished_at(cfg: Mapping, meta: Mapping) -> str:
    """``'epoch 10 of 10'`` when a checkpoint at ``meta`` is the end of the run ``cfg`` describes, else ''."""
    train_cfg = cfg.get("train_cfg")
    if not isinstance(train_cfg, Mapping) or "type" in train_cfg:
        return ""  # a loop of the user's own: its length is its business
    by_epoch = train_cfg.get("by_epoch", "max_iters" not in train_cfg)
    epoch, iteration = meta.get("epoch"), meta.get("iter")
    if by_epoch and isinstance(train_cfg.get("max_epochs"), int) and isinstance(epoch, int):
        if epoch >= train_cfg["max_epochs"] and not meta.get("batch_in_epoch"):
            return f"epoch {epoch} of {train_cfg['max_epochs']} (iter {iteration})"
    elif not by_epoch and isinstance(train_cfg.get("max_iters"), int) and isinstance(iteration, int):
        if iteration >= train_cfg["max_iters"]:
            return f"iter {iteration} of {train_cfg['max_iters']}"
    return ""


def resume_command(plan: Plan, args: argparse.Namespace, checkpoint: Path | None = None,
                    longer: bool = False, nproc: int = 1) -> str:
    """The command that continues this run: by its folder when there is one, else as it was started."""
    folder = plan.run_folder or (_folder_of(checkpoint, plan.work_dir) if checkpoint else None)
    if folder is not None:
        command = f"cockpit run --resume {folder}"
    else:
        command = f"cockpit run {args.config}" + (f" --work-dir {plan.work_dir}" if args.work_dir else "") + " --resume"
        if args.cfg_options:
            command += " --cfg-options " + " ".join(args.cfg_options)
    nproc = max(nproc, args.nproc)  # a torchrun worker is told --nproc 1: its run has world_size processes
    if nproc > 1:
        command += f" --nproc {nproc}"
    if longer:
        train_cfg = plan.cfg.get("train_cfg") or {}
        by_epoch = train_cfg.get("by_epoch", "max_iters" not in train_cfg)
        key = "max_epochs" if by_epoch else "max_iters"
        length = train_cfg.get(key)
        command += f" --cfg-options train_cfg.{key}={2 * length if isinstance(length, int) else 'N'}"
    return command


def _folder_of(checkpoint: Path, work_dir: Path) -> Path | None:
    """The run folder whose run wrote ``checkpoint`` (its ``last_checkpoint`` in run.json), if one says so."""
    for run in read_runs(work_dir, depth=1):
        if run.last_checkpoint and Path(run.last_checkpoint) == checkpoint:
            return run.folder
    return None

