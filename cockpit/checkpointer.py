"""The ``Checkpointer``: what goes into a checkpoint, where it goes, and what is kept.

It is the one owner of checkpoint files in a run:

- what a checkpoint holds (weights, optimizer, schedulers, hub, hooks' state, RNG, position);
- writing it atomically, then moving the ``last_checkpoint`` pointer;
- rotation (``max_keep_ckpts``) and the records of the best checkpoints, which it keeps in its
  own state (saved in every checkpoint) and mirrors into the hub's runtime info under
  MMEngine's names (``last_ckpt``, ``keep_ckpt_ids``, ``best_ckpt``...);
- a ``CheckpointSaved`` event for every file written and a ``CheckpointRemoved`` event for
  every file it deletes, so views never look at the disk themselves;
- reading a checkpoint back: restoring a full training state, all of it or nothing
  (``restore.RestorePlan``), Cockpit's or MMEngine's, or loading weights only;
- finding the checkpoint to resume from: the pointer is followed only into the run's own
  folders (the work dir and the out_dir), and a corrupt file is passed over for the previous;
- a failed write (a full or read-only disk) is a ``CheckpointError`` naming the folder and the
  last good checkpoint.

``CheckpointHook`` decides *when* to save; this class does the saving. A save never deletes
the only good checkpoint: old files go only after the new one is complete and named by the
pointer, and never the best, the latest, or the one this run resumed from as long as it is
the newest (once this run has written a newer one, it is rotated like any other).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cockpit import checkpoint as ckpt
from cockpit.errors import CheckpointError
from cockpit.events import Status
from cockpit.hooks.checkpoint import CheckpointHook
from cockpit.restore import RestorePlan, abandoned_branch, kept_branches, unwrap_model
from cockpit.version import __version__

if TYPE_CHECKING:
    from cockpit.hooks.dispatch import HookDispatcher
    from cockpit.interface import RunContext

__all__ = ["Checkpointer", "unwrap_model"]


class Checkpointer:
    """Writes, rotates, finds and reads the checkpoints of one run.

    Args:
        run: the run whose state goes into checkpoints.
        hooks: the run's hooks (their ``state_dict()`` goes into checkpoints).
        trusted: load checkpoints that need arbitrary pickles (only for files one trusts).
    """

    def __init__(self, run: RunContext, hooks: HookDispatcher, trusted: bool = False) -> None:
        self.run = run
        self.hooks = hooks
        self.trusted = trusted
        self.out_dir: Path | None = None
        self.filename_tmpl = "epoch_{}.pth"
        self.max_keep_ckpts = -1
        self.periodic_contents = {"save_optimizer": True, "save_param_scheduler": True}
        # Bookkeeping, saved in every checkpoint (``state_dict``) and mirrored into the hub.
        self.last_ckpt: str | None = None
        self.keep_ckpt_ids: list[int] = []
        self.best_ckpts: dict[str, str] = {}  # by the hub's name for it: best_ckpt, best_ckpt_<key>
        # The file this run resumed from, while no newer checkpoint has been written: rotation spares it.
        self.resumed_source: str | None = None
        # A fork's parent (``{"parent", "checkpoint", "forked_at"}``), published as the hub's
        # ``lineage`` when the run restores the checkpoint it was forked from.
        self.lineage: dict[str, Any] | None = None
        # The optimizer settings (``lr``, ``momentum``...) a fork's config changed: they win over the file's.
        self.fork_options: frozenset[str] = frozenset()

    # --- where -----------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        """Where checkpoints go: the configured ``out_dir``, else the work dir."""
        return Path(self.out_dir) if self.out_dir is not None else Path(self.run.work_dir)

    def folder_for(self, out_dir: str | os.PathLike | None) -> Path:
        """Where ``CheckpointHook(out_dir=...)`` saves: MMEngine's ``out_dir/<last folder of work_dir>``."""
        work_dir = Path(self.run.work_dir)
        return work_dir if out_dir is None or Path(out_dir) == work_dir else Path(out_dir) / work_dir.name

    def folders(self) -> list[Path]:
        """The run's checkpoint folders: the work dir and the out_dir (configured, or as the hook will set it)."""
        folders = [Path(self.run.work_dir), self.folder]
        folders += [self.folder_for(hook.out_dir_cfg) for hook in self.hooks.hooks if isinstance(hook, CheckpointHook)]
        return list(dict.fromkeys(folders))

    def configure(self, out_dir: str | os.PathLike | None = None, filename_tmpl: str | None = None,
                  max_keep_ckpts: int | None = None, save_optimizer: bool = True,
                  save_param_scheduler: bool = True) -> Path:
        """Set where periodic checkpoints go, what they hold and how many are kept (``CheckpointHook``).

        ``out_dir`` follows MMEngine: ``out_dir/<last folder of work_dir>`` unless it is the work dir.
        """
        self.out_dir = self.folder_for(out_dir)
        if filename_tmpl is not None:
            self.filename_tmpl = filename_tmpl
        if max_keep_ckpts is not None:
            self.max_keep_ckpts = max_keep_ckpts
        self.periodic_contents = {"save_optimizer": save_optimizer, "save_param_scheduler": save_param_scheduler}
        if self.run.is_main_process:
            for leftover in ckpt.clean_temporaries(self.out_dir):
                self.run.logger.warning(f"removed {leftover.name}, left by an interrupted save")
        self._adopt_hub_records()
        self.rotate()
        return self.out_dir

    # --- writing ---------------------------------------------------------------------------
    def contents(self, save_optimizer: bool = True, save_param_scheduler: bool = True,
                 meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Everything a checkpoint holds, as a dict ``torch.load(weights_only=True)`` can read back."""
        run = self.run
        position = run.position()
        batch_size = run.train_batch_size
        checkpoint: dict[str, Any] = {
            "meta": {
                "format": ckpt.FORMAT,
                "cockpit_version": __version__,
                **position,
                "seed": run.seed,
                "experiment_name": run.experiment_name,
                "cfg": run.cfg.pretty_text,
                "time": time.time(),
                "world_size": run.world_size,
                "batch_size": batch_size,
                # Samples of the current epoch consumed by all ranks together: lets a run resume
                # with another number of processes at the same place in the data.
                "samples_in_epoch": position["batch_in_epoch"] * run.world_size * (batch_size or 1),
                **(meta or {}),
            },
            "state_dict": unwrap_model(run.model).state_dict(),
            "message_hub": run.message_hub.state_dict(),
            "rng": ckpt.rng_state(),
            "checkpointer": self.state_dict(),
        }
        if save_optimizer and run.optim_wrapper is not None:
            checkpoint["optimizer"] = run.optim_wrapper.state_dict()
        if save_param_scheduler and run.param_schedulers:
            checkpoint["param_schedulers"] = [s.state_dict() for s in run.param_schedulers]
        states = {}
        for name, hook in zip(self.hooks.names, self.hooks.hooks, strict=True):
            state = hook.state_dict()
            if state is not None:
                states[name] = state
        checkpoint["hooks"] = states
        return checkpoint

    def write(self, filename: str, save_optimizer: bool = True, save_param_scheduler: bool = True,
              meta: Mapping[str, Any] | None = None, out_dir: str | os.PathLike | None = None) -> Path:
        """Write one checkpoint atomically to ``out_dir/filename`` (rank 0), then announce it."""
        run = self.run
        checkpoint = self.contents(save_optimizer, save_param_scheduler, meta)
        run.call_hook("before_save_checkpoint", checkpoint=checkpoint)
        path = Path(out_dir if out_dir is not None else self.folder) / filename
        if run.is_main_process:
            hub = run.message_hub
            status = hub.status
            hub.set_status(Status.SAVING)
            try:
                ckpt.save_checkpoint(checkpoint, path)
            except CheckpointError as error:
                raise CheckpointError(f"{error}. {self.last_good()}") from error.__cause__
            finally:
                hub.set_status(status)
            meta_position = checkpoint["meta"]
            hub.record_checkpoint(str(path), meta_position["epoch"], meta_position["iter"])
        return path

    def save_periodic(self, step: int) -> Path:
        """The periodic checkpoint of ``step`` (an epoch or iteration count), then rotation."""
        filename = self.filename_tmpl.format(step)
        if self.max_keep_ckpts > 0 and (not self.keep_ckpt_ids or self.keep_ckpt_ids[-1] != step):
            self.keep_ckpt_ids.append(step)
        return self._save_resumable(filename, rotate=True, **self.periodic_contents)

    def save_now(self, reason: str = "requested") -> Path:
        """A resumable checkpoint of the current position at once (a command, a signal): ``iter_<N>.pth``.

        Not rotated, unless an iteration-based periodic save writes the same name.
        """
        path = self._save_resumable(f"iter_{self.run.position()['iter']}.pth", rotate=False)
        self.run.logger.info(f"saved {path.name} ({reason})")
        return path

    def _save_resumable(self, filename: str, rotate: bool, save_optimizer: bool = True,
                        save_param_scheduler: bool = True) -> Path:
        run = self.run
        if self.out_dir is None:
            self.configure()
        path = self.folder / filename
        # The bookkeeping goes into the checkpoint: record the file as the latest before writing,
        # so a run resumed from it knows which files it made and which one it is.
        previous = self.last_ckpt
        self.last_ckpt = str(path)
        self._mirror()
        try:
            self.write(filename, save_optimizer, save_param_scheduler)
        except BaseException:
            self.last_ckpt = previous
            self._mirror()
            raise
        if run.is_main_process:
            try:
                ckpt.write_pointer(run.work_dir, path)
            except CheckpointError as error:
                raise CheckpointError(f"{error}. {path} itself is complete; {self.last_good()}") from error.__cause__
        self.resumed_source = None  # a newer good checkpoint exists now
        if run.is_main_process:
            ckpt.fault_point("before_rotation")
            if rotate:
                self.rotate()
        return path

    def last_good(self) -> str:
        """A sentence naming the newest complete checkpoint (the one ``last_checkpoint`` names)."""
        pointer = Path(self.run.work_dir) / ckpt.POINTER
        try:
            named = ckpt.read_pointer(self.run.work_dir)
        except CheckpointError:
            named = None
        if named is None or not named.is_file():
            return f"There is no complete checkpoint of this run yet ({pointer} names none)"
        return f"The last good checkpoint is {named} (named in {pointer}); resume from it with --resume"

    def save_best(self, key: str, score: float, filename: str, info_keys: tuple[str, str]) -> Path:
        """Save ``filename`` as the best for ``key``; the previous best goes once the new one is complete.

        ``info_keys`` are the hub's runtime-info names for the score and the path (MMEngine's
        ``best_score``/``best_ckpt``, suffixed with the key when there are several).
        """
        hub = self.run.message_hub
        score_key, path_key = info_keys
        previous = self.best_ckpts.get(path_key)
        path = self.folder / filename.replace("/", "_")
        hub.update_info(score_key, float(score))
        hub.update_info(path_key, str(path))
        self.best_ckpts[path_key] = str(path)
        self.write(path.name, save_optimizer=False, save_param_scheduler=False)
        if previous and previous != str(path) and self.run.is_main_process:
            self._remove(Path(previous), "a new best replaced it")
        return path

    # --- what is kept -----------------------------------------------------------------------
    def protected(self) -> set[str]:
        """Files rotation never deletes: the best ones, the latest, and the one this run resumed from
        while it is still the newest good checkpoint (until this run writes a newer one)."""
        keep = set(self.best_ckpts.values())
        if self.last_ckpt:
            keep.add(self.last_ckpt)
        if self.resumed_source:
            keep.add(self.resumed_source)
        return {str(Path(p).resolve()) for p in keep}

    def rotate(self) -> None:
        """Delete the oldest periodic checkpoints beyond ``max_keep_ckpts``.

        A protected file is kept, and so is its place in the list, so that it goes once it is no
        longer protected (rather than staying on disk forever).
        """
        if self.max_keep_ckpts <= 0:
            return
        protected = self.protected()
        old, newest = self.keep_ckpt_ids[:-self.max_keep_ckpts], self.keep_ckpt_ids[-self.max_keep_ckpts:]
        spared = []
        for step in old:
            path = self.folder / self.filename_tmpl.format(step)
            if str(path.resolve()) in protected:
                spared.append(step)
            elif self.run.is_main_process and path.is_file() and not self._remove(path, f"max_keep_ckpts={self.max_keep_ckpts}"):
                spared.append(step)
        self.keep_ckpt_ids = spared + newest
        self._mirror()

    def _remove(self, path: Path, reason: str) -> bool:
        """Delete an old checkpoint; a failure (a read-only folder) is a warning, not the end of the run."""
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            self.run.logger.warning(f"could not remove old checkpoint {path} ({reason}): {error.strerror or error}")
            return False
        self.run.message_hub.record_checkpoint_removed(str(path), reason)
        self.run.logger.info(f"removed old checkpoint {path.name} ({reason})")
        return True

    def _mirror(self) -> None:
        hub = self.run.message_hub
        hub.update_info("last_ckpt", self.last_ckpt)
        hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))

    def _adopt_hub_records(self) -> None:
        # A checkpoint written before the checkpointer kept its own state (or by MMEngine)
        # carries the records in the hub's runtime info only.
        hub = self.run.message_hub
        if self.last_ckpt is None and hub.get_info("last_ckpt"):
            self.last_ckpt = hub.get_info("last_ckpt")
        if not self.keep_ckpt_ids and hub.get_info("keep_ckpt_ids"):
            self.keep_ckpt_ids = [int(i) for i in hub.get_info("keep_ckpt_ids")]
        if not self.best_ckpts:
            self.best_ckpts = {name: value for name, value in hub.runtime_info.items()
                               if name.startswith("best_ckpt") and value}

    def state_dict(self) -> dict[str, Any]:
        return {"last_ckpt": self.last_ckpt, "keep_ckpt_ids": list(self.keep_ckpt_ids),
                "best_ckpts": dict(self.best_ckpts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_ckpt = state.get("last_ckpt")
        self.keep_ckpt_ids = [int(i) for i in state.get("keep_ckpt_ids", [])]
        self.best_ckpts = dict(state.get("best_ckpts", {}))

    # --- finding ----------------------------------------------------------------------------
    def resolve(self, which: str) -> Path:
        """The checkpoint ``which`` names: ``latest``, ``best``, a path, or a bare name in the checkpoint folders.

        Raises:
            CheckpointError: naming where it looked.
        """
        work_dir = Path(self.run.work_dir)
        if which == "latest":
            path = ckpt.follow_pointer(work_dir, self.folders())
            if path is None:
                raise CheckpointError(f"no checkpoint yet: {work_dir / ckpt.POINTER} does not exist")
        elif which == "best":
            if not self.best_ckpts:
                raise CheckpointError("no best checkpoint yet (set CheckpointHook(save_best=...) and validate)")
            path = Path(next(iter(self.best_ckpts.values())))
        else:
            path = Path(which).expanduser()
            if not path.is_absolute():
                folders = dict.fromkeys([self.folder, work_dir])
                path = next((folder / path for folder in folders if (folder / path).is_file()), path.resolve())
        if not path.is_file():
            raise CheckpointError(f"checkpoint {which} does not exist (looked for {path})")
        return path

    # --- reading ------------------------------------------------------------------------------
    def read(self, filename: str | os.PathLike) -> dict[str, Any]:
        return ckpt.load_checkpoint(filename, map_location="cpu", trusted=self.trusted)

    def load_weights(self, filename: str | os.PathLike, strict: bool = False,
                     revise_keys: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """Load model weights only (``load_from``), stripping a ``module.`` prefix."""
        run = self.run
        checkpoint = self.read(filename)
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{filename} holds no model weights (no 'state_dict' of tensors)")
        for pattern, replacement in revise_keys or [(r"^module\.", "")]:
            state = {re.sub(pattern, replacement, k): v for k, v in state.items()}
        result = unwrap_model(run.model).load_state_dict(state, strict=strict)
        if result.missing_keys or result.unexpected_keys:
            run.logger.warning(f"loaded {filename} with missing keys {result.missing_keys} "
                               f"and unexpected keys {result.unexpected_keys}")
        run.logger.info(f"Load checkpoint from {filename}")
        return checkpoint

    def restore(self, filename: str | os.PathLike, resume_optimizer: bool = True,
                resume_param_scheduler: bool = True, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
        """Restore a full training state: weights, optimizer, schedulers, hub, hooks, RNG, position.

        ``checkpoint`` is the file's content when the caller has already read it. Everything is
        checked before anything changes (``RestorePlan``): a refused resume leaves the run as it
        was. An MMEngine checkpoint is mapped onto Cockpit's layout, or refused naming what to do.

        Returns:
            The checkpoint as restored (an MMEngine one in Cockpit's layout, its other keys kept).
        """
        if checkpoint is None:
            checkpoint = self.read(filename)
        plan = RestorePlan.check(self.run, self.hooks, checkpoint, filename, resume_optimizer, resume_param_scheduler)
        forking = self._is_fork_source(plan.filename)
        configured = self._optimizer_settings() if forking else []
        plan.apply(self.run, self._info_after_restore(plan))
        if forking:
            self._apply_fork_options(configured)
        if plan.records is not None:
            self.load_state_dict(plan.records)
        else:
            self.last_ckpt, self.keep_ckpt_ids, self.best_ckpts = None, [], {}
            self._adopt_hub_records()
        if not ckpt.is_inside(Path(filename), self.folders()):
            self._forget_foreign_records()
        self.resumed_source = str(filename)
        return plan.checkpoint

    def _info_after_restore(self, plan: RestorePlan) -> dict[str, Any]:
        """Runtime info the restored hub gets on top of the checkpoint's: the segment a jump back
        abandons (``branches``), and a fork's ``lineage`` when this is the checkpoint it forked from."""
        info: dict[str, Any] = {}
        branches = kept_branches(self.run.message_hub, abandoned_branch(self.run.message_hub, plan.iteration,
                                                                        plan.filename))
        if branches is not None:
            info["branches"] = branches
        if self._is_fork_source(plan.filename):
            info["lineage"] = {**self.lineage, "forked_at": plan.iteration}
        return info

    def _is_fork_source(self, filename: str) -> bool:
        return self.lineage is not None and Path(self.lineage["checkpoint"]).resolve() == Path(filename).resolve()

    def _optimizer_settings(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups as the config built them (without their parameters)."""
        wrapper = self.run.optim_wrapper
        groups = wrapper.optimizer.param_groups if wrapper is not None else []
        return [{key: value for key, value in group.items() if key != "params"} for group in groups]

    def _apply_fork_options(self, configured: list[dict[str, Any]]) -> None:
        """Give a fork the optimizer settings its config changed; the checkpoint's state set the rest.

        A changed ``lr`` scales the restored one (and the schedulers' base values) by the ratio of
        the new to the old configured rate, so a schedule continues from where it was, scaled.
        """
        wrapper = self.run.optim_wrapper
        if wrapper is None or not self.fork_options:
            return
        for group, fresh in zip(wrapper.optimizer.param_groups, configured, strict=False):
            for name in sorted(self.fork_options & set(fresh)):
                if name == "lr":
                    old = group.get("initial_lr", group["lr"])
                    new = fresh.get("initial_lr", fresh["lr"])
                    ratio = new / old if old else 1.0
                    group["lr"] = group["lr"] * ratio if old else new
                    if "initial_lr" in group:
                        group["initial_lr"] = new
                else:
                    group[name] = fresh[name]
        configured_lrs = [fresh.get("initial_lr", fresh.get("lr")) for fresh in configured]
        if "lr" in self.fork_options:
            for scheduler in self.run.param_schedulers or []:
                inner = getattr(scheduler, "scheduler", scheduler)
                if hasattr(inner, "base_lrs"):
                    inner.base_lrs = configured_lrs[: len(inner.base_lrs)]
        self.run.logger.info(f"fork: the config's optimizer settings win over the checkpoint's: "
                             f"{', '.join(sorted(self.fork_options))}")

    def _forget_foreign_records(self) -> None:
        """After a resume from another run's checkpoint (a fork), forget the files that run wrote: this
        run must never rotate or replace them. A record of a file outside this run's folders goes."""
        folders = self.folders()
        if self.last_ckpt and not ckpt.is_inside(Path(self.last_ckpt), folders):
            self.last_ckpt = None
        self.best_ckpts = {key: path for key, path in self.best_ckpts.items() if ckpt.is_inside(Path(path), folders)}
        hub = self.run.message_hub
        for key, value in list(hub.runtime_info.items()):
            # The score stays (a new best must beat it); the file is the other run's.
            if key.startswith("best_ckpt") and isinstance(value, str) and not ckpt.is_inside(Path(value), folders):
                hub.pop_info(key)
        if not any((self.folder / self.filename_tmpl.format(step)).is_file() for step in self.keep_ckpt_ids):
            self.keep_ckpt_ids = []
        self._mirror()

    def auto_resume(self, resume: Callable[[Path], Any]) -> Path:
        """``resume=True``: resume from the newest good checkpoint, falling back past corrupt ones.

        ``resume(path)`` does the resuming (the runner's, which also calls the hooks).

        Raises:
            CheckpointError: nothing to resume from, saying why each candidate failed.
        """
        run = self.run
        if run.is_main_process:
            for path in ckpt.clean_temporaries(run.work_dir):
                run.logger.warning(f"removed {path.name}, left by an interrupted save")
        failures = []
        for candidate in ckpt.candidate_checkpoints(run.work_dir, self.folders()):
            if run.is_main_process:
                ckpt.clean_temporaries(candidate.parent)
            try:
                resume(candidate)
            except CheckpointError as error:
                failures.append(str(error))
                run.logger.warning(f"cannot resume from {candidate}: {error}; trying the previous checkpoint")
                continue
            if failures:
                run.logger.warning(f"resumed from the previous good checkpoint {candidate}")
            return candidate
        reason = "; ".join(failures) if failures else "no checkpoint files found"
        raise CheckpointError(f"resume was requested but there is nothing to resume from in {run.work_dir} "
                              f"({reason}). Start without --resume for a fresh run, or pass the checkpoint path")

    def publish(self, ckpt_path: str, published_keys: list[str]) -> Path:
        """A slim copy of ``ckpt_path`` with only ``published_keys``, named with its sha256 prefix."""
        checkpoint = ckpt.load_checkpoint(ckpt_path, trusted=self.trusted)
        removed = [k for k in checkpoint if k not in published_keys]
        for key in removed:
            checkpoint.pop(key)
        if removed:
            self.run.logger.info(f"Key {removed} will be removed because they are not found in published_keys. "
                                 f"If you want to keep them, please set `{removed}` in published_keys")
        buffer = io.BytesIO()
        torch.save(ckpt.with_checksum(checkpoint), buffer)
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        final = Path(f"{os.path.splitext(ckpt_path)[0]}-{sha[:8]}.pth")
        ckpt.atomic_write(final, lambda file: file.write(data))
        self.run.logger.info(f"The checkpoint ({ckpt_path}) is published to {final}.")
        return final
