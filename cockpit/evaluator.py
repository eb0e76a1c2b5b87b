"""Metrics and the evaluator, with MMEngine's ``process``/``compute_metrics`` contract."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from typing import Any

import torch

#: The ``collect_device`` values MMEngine accepts. Cockpit gathers results the same way for each.
COLLECT_DEVICES = ("cpu", "gpu", "npu")


class BaseMetric:
    """Accumulates per-batch results, then computes metrics over all of them (MMEngine's ``BaseMetric``).

    Subclasses implement ``process(data_batch, data_samples)``, appending to
    ``self.results``, and ``compute_metrics(results)`` returning a dict.

    Args:
        collect_device: how MMEngine gathers results across ranks, ``'cpu'`` or ``'gpu'``
            (``None`` means ``'cpu'``). Accepted for OpenMMLab metrics; Cockpit gathers
            them with ``torch.distributed.all_gather_object`` either way.
        prefix: prepended to every metric name as ``prefix/name``; without one,
            the class attribute ``default_prefix`` is used (as in MMEngine).
        collect_dir: MMEngine's directory for gathering on ``'cpu'``; accepted, not needed.

    As in MMEngine, ``evaluate(size)`` puts the results of all ranks back in dataset
    order (rank 0's first result, rank 1's first, ...), keeps the first ``size``, and
    calls ``compute_metrics`` on rank 0 only, whose metrics every rank returns.
    ``dataset_meta`` holds the dataset's ``metainfo`` once the evaluator is given it.
    """

    default_prefix: str | None = None

    def __init__(self, collect_device: str | None = "cpu", prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        collect_device = "cpu" if collect_device is None else collect_device
        if collect_device not in COLLECT_DEVICES:
            raise ValueError(f"collect_device must be 'cpu' or 'gpu', got {collect_device!r}; the first argument "
                             "of BaseMetric is collect_device (as in MMEngine): pass a prefix by keyword, "
                             "super().__init__(prefix=...)")
        if collect_dir is not None and collect_device != "cpu":
            raise ValueError("collect_dir can only be set with collect_device='cpu' (as in MMEngine)")
        self.collect_device = collect_device
        self.collect_dir = collect_dir
        self.prefix = prefix or self.default_prefix
        self.results: list[Any] = []
        self._dataset_meta: dict | None = None

    @property
    def dataset_meta(self) -> dict | None:
        """The dataset's meta information (``dataset.metainfo``), if the evaluator was given it."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict | None) -> None:
        self._dataset_meta = dataset_meta

    def process(self, data_batch: Any, data_samples: Any) -> None:
        raise NotImplementedError

    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        raise NotImplementedError

    def evaluate(self, size: int | None = None) -> dict[str, Any]:
        """Compute the metrics over everything processed on every rank, then forget it.

        Args:
            size: the length of the whole dataset: results past it (a sampler's padding)
                are dropped, as in MMEngine. ``None`` keeps them all.
        """
        from cockpit.dist import all_gather_objects, broadcast_object, is_main_process

        results = _in_dataset_order(all_gather_objects(self.results))
        if size is not None:
            results = results[:size]
        if not results:
            raise RuntimeError(
                f"{type(self).__name__} got no results: process() never appended to self.results "
                "(is the validation dataloader empty?)"
            )
        outcome: Any = None
        failure: Exception | None = None
        if is_main_process():
            try:
                metrics = self.compute_metrics(results)
                if self.prefix:
                    metrics = {"/".join((self.prefix, k)): v for k, v in metrics.items()}
                outcome = ("ok", metrics)
            except Exception as error:
                # Tell the other ranks, which wait in the broadcast, instead of leaving them hanging.
                failure = error
                outcome = ("failed", f"{type(error).__name__}: {error}")
        outcome = broadcast_object(outcome)
        self.results.clear()
        if failure is not None:
            raise failure
        status, value = outcome
        if status != "ok":
            raise RuntimeError(f"{type(self).__name__}.compute_metrics failed on rank 0: {value}")
        return value


def _in_dataset_order(parts: list[list[Any]]) -> list[Any]:
    """All ranks' results interleaved, as MMEngine's ``collect_results``: each rank's sampler takes every
    world-size-th sample, so the i-th result of each rank in turn is the dataset's order."""
    if len(parts) == 1:
        return list(parts[0])
    missing = object()
    return [item for group in zip_longest(*parts, fillvalue=missing) for item in group if item is not missing]


class Accuracy(BaseMetric):
    """Top-k classification accuracy, as a fraction in [0, 1].

    The model's ``predict`` output is ``(scores, labels)`` (MMEngine's tutorial
    shape) or a dict with ``scores`` (or ``logits``) and ``labels``.
    Metric names: ``top1``, ``top5``... under the prefix ``accuracy``.

    Args:
        topk: the k values.
        prefix: defaults to ``'accuracy'``.
        collect_device: as for :class:`BaseMetric`.
        collect_dir: as for :class:`BaseMetric`.
    """

    default_prefix = "accuracy"

    def __init__(self, topk: int | Sequence[int] = (1,), prefix: str | None = None, collect_device: str = "cpu",
                 collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.topk = (topk,) if isinstance(topk, int) else tuple(topk)
        if not self.topk or any(not isinstance(k, int) or k < 1 for k in self.topk):
            raise ValueError(f"topk must be positive ints, got {topk!r}")

    def process(self, data_batch: Any, data_samples: Any) -> None:
        if isinstance(data_samples, dict):
            scores = data_samples.get("scores", data_samples.get("logits"))
            labels = data_samples.get("labels")
        else:
            scores, labels = data_samples
        if scores is None or labels is None:
            raise ValueError("Accuracy needs predictions as (scores, labels) or dict(scores=..., labels=...)")
        maxk = min(max(self.topk), scores.shape[-1])
        top = scores.topk(maxk, dim=-1).indices
        hits = top == labels.view(-1, 1)
        correct = [int(hits[:, : min(k, maxk)].any(dim=1).sum()) for k in self.topk]
        self.results.append((correct, int(labels.numel())))

    def compute_metrics(self, results: list[Any]) -> dict[str, float]:
        total = sum(n for _, n in results)
        return {f"top{k}": sum(c[i] for c, _ in results) / total for i, k in enumerate(self.topk)}


class Evaluator:
    """Runs several metrics over the same predictions.

    Metric names are each metric's own keys under its prefix (``accuracy/top1``), as MMEngine's
    ``Evaluator`` returns them; the hooks record them under ``val/`` or ``test/``.

    Args:
        metrics: one metric or a list of them.
    """

    def __init__(self, metrics: BaseMetric | Sequence[BaseMetric]) -> None:
        self.metrics = [metrics] if isinstance(metrics, BaseMetric) else list(metrics)
        for metric in self.metrics:
            if not isinstance(metric, BaseMetric):
                raise TypeError(f"evaluator metrics must be BaseMetric instances, got {type(metric).__name__}")
        self._dataset_meta: dict | None = None

    @property
    def dataset_meta(self) -> dict | None:
        """The dataset's meta information; setting it gives it to every metric (as in MMEngine)."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict | None) -> None:
        self._dataset_meta = dataset_meta
        for metric in self.metrics:
            metric.dataset_meta = dataset_meta

    def process(self, data_samples: Any, data_batch: Any = None) -> None:
        for metric in self.metrics:
            metric.process(data_batch, data_samples)

    def evaluate(self, size: int | None = None) -> dict[str, Any]:
        """Every metric's results; ``size`` is the dataset's length (see :meth:`BaseMetric.evaluate`)."""
        metrics: dict[str, Any] = {}
        for metric in self.metrics:
            result = metric.evaluate(size)
            clash = set(result) & set(metrics)
            if clash:
                raise ValueError(f"metrics report the same names {sorted(clash)}; give them distinct prefixes")
            metrics.update(result)
        return {k: _scalar(v) for k, v in metrics.items()}


def _scalar(value: Any) -> Any:
    """A number (or one-element tensor) as a float for the hub; anything else as it is."""
    if isinstance(value, torch.Tensor):
        return float(value) if value.numel() == 1 else value
    return float(value) if isinstance(value, (int, float)) else value
