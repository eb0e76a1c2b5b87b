"""``LoggerHook``: MMEngine's progress lines, ``vis_data/scalars.json`` in MMEngine's layout, TensorBoard."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cockpit.errors import ConfigError
from cockpit.hooks.base import DataBatch, Hook
from cockpit.log_processor import LogProcessor
from cockpit.priority import Priority
from cockpit.writers import JsonLinesWriter, TensorboardWriter, json_line

if TYPE_CHECKING:
    from cockpit.interface import RunContext

#: Files of the run folder that stay where they are whatever ``out_suffix`` says: the connection
#: file holds the key that signs commands, and ``cockpit ls`` reads the status file.
_LOCAL_ONLY = frozenset({"cockpit.json", "run.json"})

#: Tag entries that say where a line belongs rather than measure anything (not TensorBoard scalars).
_POSITION_KEYS = frozenset({"epoch", "iter", "step"})


class LoggerHook(Hook):
    """Logs progress as MMEngine 0.10.7 does, and writes the logged scalars.

    A train line reads ``Epoch(train)  [1][15/45]  lr: 1.0000e-01  eta: 0:00:12  time: 0.0101
    data_time: 0.0012  loss: 0.4123``: losses and times averaged over the log processor's
    window, the learning rate as it is now. After a validation: ``Epoch(val) [1][8/8]
    accuracy/top1: 0.9700  data_time: 0.0012  time: 0.0040``. Every ``interval_exp_name``
    iterations and at the end of each epoch an ``Exp name: ...`` line says which run this is.

    Scalars go to ``<run folder>/vis_data/scalars.json`` and ``vis_data/<timestamp>.json``
    (the same JSON lines, MMEngine's ``LocalVisBackend`` layout: ``loss``, ``lr``, ``epoch``,
    ``iter``, ``step``...), and to a tensorboardX event file in ``vis_data`` under the hub's
    names (``train/loss``, ``val/accuracy/top1``) at the training iteration. Test metrics go to
    ``<run folder>/<timestamp>.json``, as in MMEngine.

    Args:
        interval: log every this many batches of an epoch (of the run, for iteration-based training).
        ignore_last: skip the last, shorter stretch of an epoch; it is logged anyway when the whole
            epoch is no longer than ``interval``.
        interval_exp_name: print the experiment name every this many iterations.
        out_dir: after the run, copy the run folder's files ending with ``out_suffix`` to
            ``out_dir/<work_dir's name>/`` (a local folder).
        out_suffix: the endings of the files ``out_dir`` receives.
        keep_local: with ``out_dir``, keep the local copies (False removes them once copied).
        file_client_args: MMEngine's remote-storage arguments; refused (Cockpit writes local files).
        log_metric_by_epoch: the ``step`` of validation lines in ``scalars.json``: the epoch
            (True) or the training iteration (False).
        backend_args: MMEngine's remote-storage arguments; refused (Cockpit writes local files).
        backends: Cockpit's: any of ``'json'`` and ``'tensorboard'`` (what ``visualizer`` sets).
    """

    priority = Priority.BELOW_NORMAL
    reads_every_iteration = False  # only at its log points (``log_point``)

    def __init__(self, interval: int = 10, ignore_last: bool = True, interval_exp_name: int = 1000,
                 out_dir: str | Path | None = None,
                 out_suffix: str | Sequence[str] = (".json", ".log", ".py", "yaml"), keep_local: bool = True,
                 file_client_args: Mapping | None = None, log_metric_by_epoch: bool = True,
                 backend_args: Mapping | None = None,
                 backends: tuple[str, ...] | list[str] = ("json", "tensorboard")) -> None:
        _check_positive_int("interval", interval)
        _check_positive_int("interval_exp_name", interval_exp_name)
        for name, value in (("ignore_last", ignore_last), ("keep_local", keep_local),
                            ("log_metric_by_epoch", log_metric_by_epoch)):
            if not isinstance(value, bool):
                raise ConfigError(f"LoggerHook {name} must be True or False, got {value!r}",
                                  fix=f"write {name}=True or {name}=False")
        for name, value in (("file_client_args", file_client_args), ("backend_args", backend_args)):
            if value is not None:
                raise ConfigError(f"LoggerHook {name}={value!r}: Cockpit reads and writes local files only "
                                  "(no Petrel, S3 or HTTP backends)",
                                  fix=f"remove {name}; give out_dir a local folder (a mounted remote folder "
                                      "works) and upload from there after the run")
        if out_dir is not None:
            if not isinstance(out_dir, (str, Path)):
                raise ConfigError(f"LoggerHook out_dir must be a folder path, got {out_dir!r}",
                                  fix="write out_dir='/path/to/logs'")
            if "://" in str(out_dir):
                raise ConfigError(f"LoggerHook out_dir={str(out_dir)!r}: Cockpit copies logs to local folders only",
                                  fix="give out_dir a local folder (a mounted remote folder works), or upload "
                                      "the run folder yourself after the run")
        if not (isinstance(out_suffix, str)
                or (isinstance(out_suffix, Sequence) and all(isinstance(s, str) for s in out_suffix))):
            raise ConfigError(f"LoggerHook out_suffix must be a string or a list of strings, got {out_suffix!r}",
                              fix="write out_suffix=('.json', '.log', '.py', 'yaml')")
        unknown = set(backends) - {"json", "tensorboard"}
        if unknown:
            raise ConfigError(f"unknown LoggerHook backends {sorted(unknown)}", fix="use 'json' and/or 'tensorboard'")
        self.interval = interval
        self.ignore_last = ignore_last
        self.interval_exp_name = interval_exp_name
        self.out_dir = out_dir
        self.out_suffix = out_suffix
        self.keep_local = keep_local
        self.log_metric_by_epoch = log_metric_by_epoch
        self.backends = tuple(backends)
        self.json_log_path: str | None = None
        self._json_writers: list[JsonLinesWriter] = []
        self._tensorboard_writers: list[TensorboardWriter] = []
        self._processor: LogProcessor | None = None
        self._epoch_length = -1  # batches in a train epoch; worked out at the first train iteration
        self._copy_to: Path | None = None

    @property
    def writers(self) -> list[JsonLinesWriter | TensorboardWriter]:
        """The open writers (none outside a run)."""
        return [*self._json_writers, *self._tensorboard_writers]

    # --- the run ------------------------------------------------------------------------------------
    def before_run(self, runner: RunContext) -> None:
        self._processor = _log_processor(runner)
        self._epoch_length = -1
        self.json_log_path = f"{runner.timestamp}.json"
        if self.out_dir is not None:
            self._copy_to = Path(self.out_dir) / runner.work_dir.name
            runner.logger.info(f"Text logs will be saved to {self._copy_to} after the run.")
        if not runner.is_main_process:
            return
        vis_dir = runner.log_dir / "vis_data"
        if "json" in self.backends:
            # MMEngine's LocalVisBackend writes both files; analysis tools are pointed at either.
            self._json_writers = [JsonLinesWriter(vis_dir / "scalars.json"),
                                  JsonLinesWriter(vis_dir / self.json_log_path)]
        if "tensorboard" in self.backends:
            self._tensorboard_writers = [TensorboardWriter(vis_dir)]

    def after_run(self, runner: RunContext) -> None:
        for writer in self.writers:
            writer.close()
        self._json_writers, self._tensorboard_writers = [], []
        if self._copy_to is not None and runner.is_main_process:
            self._copy_logs(runner, self._copy_to)

    # --- training -----------------------------------------------------------------------------------
    def log_point(self, runner: RunContext, batch_idx: int) -> bool:
        """Whether a train line (which reads the step's values) is written after batch ``batch_idx``."""
        # batch_idx counts batches within the epoch (within the run, for iteration-based training).
        batches = batch_idx + 1
        if batches % self.interval == 0:
            return True
        epoch_length = self._train_epoch_length(runner)
        return batches == epoch_length and (not self.ignore_last or epoch_length <= self.interval)

    def _train_epoch_length(self, runner: RunContext) -> int:
        if self._epoch_length < 0:
            self._epoch_length = _length(runner.train_dataloader)
        return self._epoch_length

    def after_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                         outputs: dict | None = None) -> None:
        batches = batch_idx + 1
        epoch_length = self._train_epoch_length(runner)
        if batches % self.interval and batches != epoch_length and (runner.iter + 1) % self.interval_exp_name:
            return  # most iterations: nothing to print
        if batches == epoch_length or (runner.iter + 1) % self.interval_exp_name == 0:
            runner.logger.info(f"Exp name: {runner.experiment_name}")
        if self.log_point(runner, batch_idx):
            tag, line = self._processor_for(runner).get_log_after_iter(runner, batch_idx, "train")
            runner.logger.info(line)
            self._write_json(tag, runner.iter + 1)
            self._write_tensorboard(tag, "train", runner.iter + 1)

    # --- validation and test ----------------------------------------------------------------------------
    def after_val_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                       outputs: Sequence | None = None) -> None:
        if (batch_idx + 1) % self.interval == 0:
            runner.logger.info(self._processor_for(runner).get_log_after_iter(runner, batch_idx, "val")[1])

    def after_test_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                        outputs: Sequence | None = None) -> None:
        if (batch_idx + 1) % self.interval == 0:
            runner.logger.info(self._processor_for(runner).get_log_after_iter(runner, batch_idx, "test")[1])

    def after_val_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        tag, line = self._processor_for(runner).get_log_after_epoch(runner, _length(runner.val_loop.dataloader), "val")
        runner.logger.info(line)
        self._write_json(tag, runner.epoch if self.log_metric_by_epoch else runner.iter)
        self._write_tensorboard(tag, "val", runner.iter)

    def after_test_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        tag, line = self._processor_for(runner).get_log_after_epoch(
            runner, _length(runner.test_loop.dataloader), "test", with_non_scalar=True)
        runner.logger.info(line)
        if runner.is_main_process and "json" in self.backends:
            # As MMEngine: one JSON object (not a line of scalars.json), replaced by each test.
            path = runner.log_dir / (self.json_log_path or f"{runner.timestamp}.json")
            path.write_text(json.dumps({key: _json_ready(value) for key, value in tag.items()}), encoding="utf-8")
        self._write_tensorboard(tag, "test", runner.iter)

    # --- helpers ------------------------------------------------------------------------------------
    def _processor_for(self, runner: RunContext) -> LogProcessor:
        if self._processor is None:  # called outside a run (a hook author's own loop)
            self._processor = _log_processor(runner)
        return self._processor

    def _write_json(self, tag: dict[str, Any], step: int) -> None:
        """One line of ``scalars.json`` (and its twin), named as MMEngine names them."""
        if not self._json_writers:
            return
        line = json_line(tag, step)  # the same line in each file: encoded once
        for writer in self._json_writers:
            writer.write_line(line)

    def _write_tensorboard(self, tag: dict[str, Any], mode: str, step: int) -> None:
        """The tag's scalars under the hub's names (``train/loss``), at the training iteration ``step``."""
        if not self._tensorboard_writers:
            return
        prefix = f"{mode}/"
        values = {(key if key.startswith(prefix) else prefix + key): value for key, value in tag.items()
                  if key not in _POSITION_KEYS and isinstance(value, (int, float))}
        for writer in self._tensorboard_writers:
            writer.add_scalars(values, step)

    def _copy_logs(self, runner: RunContext, target: Path) -> None:
        """MMEngine's ``out_dir``: copy the run folder's log files there; without ``keep_local``, remove them here."""
        suffixes = (self.out_suffix,) if isinstance(self.out_suffix, str) else tuple(self.out_suffix)
        log_dir = runner.log_dir
        copied: list[Path] = []
        for path in sorted(log_dir.rglob("*")):
            relative = path.relative_to(log_dir).as_posix()
            if path.name in _LOCAL_ONLY or not relative.endswith(suffixes) or not path.is_file():
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            runner.logger.info(f"The file {path} has been copied to {destination}.")
            copied.append(path)
        if self.keep_local or not copied:
            return
        # Stop writing the log file before removing it, or the next line would create it again.
        removed = set(copied)
        for handler in list(runner.logger.handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) in removed:
                runner.logger.removeHandler(handler)
                handler.close()
        for path in copied:
            path.unlink(missing_ok=True)
        runner.logger.info(f"Removed the local copies of {len(copied)} files (keep_local=False); "
                           f"the logs of this run are in {target}")


def _log_processor(runner: RunContext) -> LogProcessor:
    """The run's ``LogProcessor``: ``runner.log_processor`` if it is one, else built from the config."""
    processor = getattr(runner, "log_processor", None)
    if isinstance(processor, LogProcessor):
        return processor
    return LogProcessor.build(runner.cfg.get("log_processor"))


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"LoggerHook {name} must be a positive int, got {value!r}", fix=f"write {name}=10")


def _length(dataloader: Any) -> int:
    """Batches in ``dataloader``, or 0 for one without a length (then no batch ends an epoch)."""
    try:
        return len(dataloader)
    except TypeError:
        return 0


def _json_ready(value: Any) -> Any:
    """``value`` as JSON can hold it: tensors and arrays as lists; anything else unknown as None."""
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _json_ready(item) for key, item in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else None

