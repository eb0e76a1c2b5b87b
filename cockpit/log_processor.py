"""``LogProcessor``: MMEngine's log lines and scalar tags, made from the hub's scalars.

The ``LoggerHook`` asks it for two things at a logging step: the text line a person reads
(``Epoch(train)  [1][15/45]  lr: 1.0000e-01  eta: 0:00:01  time: 0.0210  data_time: 0.0005  loss: 1.0762``)
and the tag written to ``vis_data/scalars.json`` (``{"lr": 0.1, "data_time": ..., "loss": ...,
"time": ..., "epoch": 1, "iter": 15}``). Both follow MMEngine 0.10.7's ``LogProcessor`` to the
character, so an MMEngine user's eyes and log-analysis tools find what they expect. The method
names and arguments are MMEngine's too: a hook written for MMEngine may call
``runner.log_processor.get_log_after_iter(runner, batch_idx, 'train')``.

Differences, on purpose:

- ``by_epoch`` left unset follows the train loop (MMEngine's default, True, prints
  ``[1][12/8]`` for iteration-based training unless the config says ``by_epoch=False``);
- after a validation or test epoch, metrics are shown as the evaluator computed them: MMEngine
  averages a metric whose name contains ``loss`` (or ``time``...) with the previous validations';
- ``custom_cfg`` is refused with a clear error rather than half-implemented.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from cockpit.errors import ConfigError

if TYPE_CHECKING:
    from cockpit.interface import RunContext

#: MMEngine's default: scalars whose names match are averaged over ``window_size``, the rest shown as they are now.
MEAN_PATTERN = r".*(loss|time|data_time|grad_norm).*"

_MODES = ("train", "val", "test")
_TIME_KEYS = ("time", "data_time")


class LogProcessor:
    """Formats the hub's scalars into MMEngine's log lines and tags.

    Args:
        window_size: how many recent values the smoothed scalars (``mean_pattern``) average.
        by_epoch: ``Epoch(train) [e][i/n]`` (True) or ``Iter(train) [i/N]`` (False) lines; None
            follows the train loop (a run with no train loop uses MMEngine's default, True).
        custom_cfg: MMEngine's per-scalar statistics; not supported (an error says what to write).
        num_digits: digits after the point of the values shown.
        log_with_hierarchy: keep the ``train/``, ``val/`` prefixes in the tags written to
            ``scalars.json`` (MMEngine's option; the log line never shows them).
        mean_pattern: a regular expression; scalars whose names match it are averaged over
            ``window_size``, the others shown as they are now.
    """

    def __init__(self, window_size: int = 10, by_epoch: bool | None = None, custom_cfg: list | None = None,
                 num_digits: int = 4, log_with_hierarchy: bool = False, mean_pattern: str = MEAN_PATTERN) -> None:
        if not isinstance(window_size, int) or isinstance(window_size, bool) or window_size < 1:
            raise ConfigError(f"window_size must be a positive int, got {window_size!r}",
                              key="log_processor.window_size", fix="write log_processor=dict(window_size=10)")
        if by_epoch is not None and not isinstance(by_epoch, bool):
            raise ConfigError(f"by_epoch must be True, False or None, got {by_epoch!r}",
                              key="log_processor.by_epoch",
                              fix="write by_epoch=True (Epoch(train) [e][i/n] lines) or by_epoch=False "
                                  "(Iter(train) [i/N] lines), or leave it out to follow train_cfg")
        if custom_cfg:
            raise ConfigError("custom_cfg (per-scalar statistics in the log line) is not supported",
                              key="log_processor.custom_cfg",
                              fix="remove custom_cfg; log_processor=dict(window_size=N) sets the smoothing of "
                                  "every averaged value, and the cockpit's plots and vis_data/scalars.json hold "
                                  "each scalar's whole history")
        if not isinstance(num_digits, int) or isinstance(num_digits, bool) or num_digits < 0:
            raise ConfigError(f"num_digits must be an int >= 0, got {num_digits!r}", key="log_processor.num_digits",
                              fix="write log_processor=dict(num_digits=4)")
        if not isinstance(log_with_hierarchy, bool):
            raise ConfigError(f"log_with_hierarchy must be True or False, got {log_with_hierarchy!r}",
                              key="log_processor.log_with_hierarchy", fix="write log_with_hierarchy=False")
        try:
            self.mean_pattern = re.compile(mean_pattern)
        except (re.error, TypeError) as error:
            raise ConfigError(f"mean_pattern is not a regular expression: {error}", key="log_processor.mean_pattern",
                              fix=f"write mean_pattern=r'{MEAN_PATTERN}' (MMEngine's default)") from None
        self.window_size = window_size
        self.by_epoch = by_epoch
        self.custom_cfg: list = []
        self.num_digits = num_digits
        self.log_with_hierarchy = log_with_hierarchy

    @classmethod
    def build(cls, cfg: LogProcessor | Mapping[str, Any] | None) -> LogProcessor:
        """A ``LogProcessor`` from the config's ``log_processor`` (a dict, an instance or None).

        Raises:
            ConfigError: an argument MMEngine's ``LogProcessor`` does not take, or a value Cockpit cannot honour.
        """
        if isinstance(cfg, LogProcessor):
            return cfg
        settings = dict(cfg or {})
        kind = settings.pop("type", "LogProcessor")
        if isinstance(kind, type) and issubclass(kind, LogProcessor):
            processor_cls = kind
        elif kind == "LogProcessor":
            processor_cls = cls
        else:
            raise ConfigError(f"log_processor type {kind!r} is not supported", key="log_processor.type",
                              fix="leave type out (Cockpit's LogProcessor takes MMEngine's arguments), or give a "
                                  "subclass of cockpit.log_processor.LogProcessor")
        known = ("window_size", "by_epoch", "custom_cfg", "num_digits", "log_with_hierarchy", "mean_pattern")
        for key in settings:
            if processor_cls is cls and key not in known:  # a subclass checks its own arguments
                raise ConfigError(f"LogProcessor has no argument {key!r}", key=f"log_processor.{key}",
                                  fix=f"LogProcessor takes: {', '.join(known)}")
        return processor_cls(**settings)

    # --- MMEngine's two entry points -----------------------------------------------------------
    def get_log_after_iter(self, runner: RunContext, batch_idx: int, mode: str) -> tuple[dict[str, Any], str]:
        """The tag and the log line after an iteration of ``mode`` (``'train'``, ``'val'`` or ``'test'``)."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        shown = self._collect_scalars(runner, mode, with_prefix=False)
        tag = self._collect_scalars(runner, mode, with_prefix=True) if self.log_with_hierarchy else dict(shown)
        digits = self.num_digits

        # Learning rates: as they are now, in scientific notation, right after the header.
        lr_parts = []
        for key, value in tag.items():
            if key.endswith("lr"):
                short = key.removeprefix(f"{mode}/")
                shown.pop(short, None)
                lr_parts.append(f"{short}: {value:.{digits}e}")

        built = _train_loop_built(runner)
        if self._by_epoch(runner):
            length = _dataloader_length(runner, mode)
            position = str(batch_idx + 1).rjust(len(str(length)))
            if mode in ("train", "val"):
                epoch = runner.epoch + 1 if mode == "train" else runner.epoch
                epoch_text = f"[{epoch}]"
                if built:
                    # Right-aligned so lines of epoch 9 and epoch 10 line up (MMEngine's layout).
                    epoch_text = epoch_text.rjust(len(str(runner.max_epochs)) + 3)
                tag["epoch"] = epoch
                line = f"Epoch({mode}){epoch_text}[{position}/{length}]  "
            else:
                line = f"Epoch({mode}) [{position}/{length}]  "
        elif mode == "train":
            position = str(runner.iter + 1).rjust(len(str(runner.max_iters)))
            line = f"Iter({mode}) [{position}/{runner.max_iters}]  "
        else:
            length = _dataloader_length(runner, mode)
            line = f"Iter({mode}) [{str(batch_idx + 1).rjust(len(str(length)))}/{length}]  "
        tag["iter"] = runner.iter + 1 if built else 0
        line += " ".join(lr_parts) + "  "

        eta = runner.message_hub.runtime_info.get("eta")
        if eta is not None and all(key in shown for key in _TIME_KEYS):
            line += (f"eta: {datetime.timedelta(seconds=int(eta))}  time: {shown.pop('time'):.{digits}f}  "
                     f"data_time: {shown.pop('data_time'):.{digits}f}  ")
        memory = _max_memory_mb(runner)
        if memory is not None:
            line += f"memory: {memory}  "
            tag["memory"] = memory

        if mode in ("train", "val"):
            items = []
            for name, value in shown.items():
                # MMEngine's rule, kept for the same text: a val line shows only names starting
                # with 'val/loss', and its names have no prefix, so the loop shows none.
                if mode == "val" and not name.startswith("val/loss"):
                    continue
                items.append(f"{name}: {self._format(value)}")
            line += "  ".join(items)
        return tag, line

    def get_log_after_epoch(self, runner: RunContext, batch_idx: int, mode: str,
                            with_non_scalar: bool = False) -> tuple[dict[str, Any], str]:
        """The tag and the log line after a validation or test epoch of ``batch_idx`` batches."""
        if mode not in ("val", "test"):
            raise ValueError(f"get_log_after_epoch takes mode 'val' or 'test', got {mode!r}")
        length = _dataloader_length(runner, mode)
        if not self._by_epoch(runner):
            line = f"Iter({mode}) [{length}/{length}]  "
        elif mode == "val":
            line = f"Epoch({mode}) [{runner.epoch}][{length}/{length}]  "
        else:
            line = f"Epoch({mode}) [{length}/{length}]  "

        prefix = f"{mode}/"
        metrics: dict[str, Any] = {}
        times: dict[str, Any] = {}
        for key, history in runner.message_hub.log_scalars.items():
            if not key.startswith(prefix):
                continue
            short = key[len(prefix):]
            name = key if self.log_with_hierarchy else short
            if short in _TIME_KEYS:
                # Averaged over the epoch: MMEngine's window is the batch count plus one.
                times[name] = history.mean(batch_idx + 1)
            else:
                metrics[name] = history.current()
        non_scalars = {(key if self.log_with_hierarchy else key[len(prefix):]): value
                       for key, value in runner.message_hub.runtime_info.items() if key.startswith(prefix)}

        items = []
        for name, value in (*metrics.items(), *non_scalars.items(), *times.items()):
            if isinstance(value, torch.Tensor) or type(value).__name__ == "ndarray":
                value = f"\n{value}\n"  # a matrix starts on a line of its own
            items.append(f"{name}: {self._format(value)}")
        line += "  " + "  ".join(items)

        tag = dict(metrics)
        if with_non_scalar:
            tag.update(non_scalars)
        tag.update(times)
        return tag, line

    # --- helpers ----------------------------------------------------------------------------------
    def _by_epoch(self, runner: RunContext) -> bool:
        if self.by_epoch is not None:
            return self.by_epoch
        return runner.is_epoch_based or not _train_loop_built(runner)

    def _collect_scalars(self, runner: RunContext, mode: str, with_prefix: bool) -> dict[str, float]:
        """``mode``'s scalars in the hub's order: averaged if their name matches ``mean_pattern``, else current."""
        prefix = f"{mode}/"
        tag = {}
        for key, history in runner.message_hub.log_scalars.items():
            if key.startswith(prefix):
                name = key if with_prefix else key[len(prefix):]
                tag[name] = history.mean(self.window_size) if self.mean_pattern.search(name) else history.current()
        return tag

    def _format(self, value: Any) -> str:
        return f"{value:.{self.num_digits}f}" if isinstance(value, float) else str(value)

    def __repr__(self) -> str:
        return (f"LogProcessor(window_size={self.window_size}, by_epoch={self.by_epoch}, "
                f"num_digits={self.num_digits}, log_with_hierarchy={self.log_with_hierarchy})")


def _train_loop_built(runner: RunContext) -> bool:
    """Whether the run has a train loop (MMEngine checks ``runner._train_loop``): training now, or trained."""
    return runner.in_training or runner.is_epoch_based or runner.iter > 0


def _dataloader_length(runner: RunContext, mode: str) -> int:
    return len(getattr(runner, f"{mode}_loop").dataloader)


def _max_memory_mb(runner: RunContext) -> int | None:
    """The peak CUDA memory since the last log line, in MiB (MMEngine's ``memory``); None without CUDA in use."""
    # Only a run that uses CUDA asks: querying would otherwise create a CUDA context for a CPU run.
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    device = getattr(runner.model, "output_device", None)
    peak = torch.cuda.max_memory_allocated(device=device)
    torch.cuda.reset_peak_memory_stats()
    return int(peak) // (1024 * 1024)


__all__ = ["MEAN_PATTERN", "LogProcessor"]
