"""Metrics and the evaluator, with MMEngine's ``process``/``compute_metrics`` contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class BaseMetric:
    """Accumulates per-batch results, then computes metrics over all of them.

    Subclasses implement ``process(data_batch, data_samples)``, appending to
    ``self.results``, and ``compute_metrics(results)`` returning a dict.

    Args:
        prefix: prepended to every metric name as ``prefix/name``.
    """

    default_prefix: str | None = None

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or self.default_prefix
        self.results: list[Any] = []

    def process(self, data_batch: Any, data_samples: Any) -> None:
        raise NotImplementedError

    def compute_metrics(self, results: list[Any]) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self, size: int | None = None) -> dict[str, float]:
        """Compute the metrics over everything processed, then forget it."""
        from cockpit.dist import all_gather_objects

        results = [item for part in all_gather_objects(self.results) for item in part]
        if not results:
            raise RuntimeError(
                f"{type(self).__name__} got no results: process() never appended to self.results "
                "(is the validation dataloader empty?)"
            )
        metrics = self.compute_metrics(results)
        self.results.clear()
        if self.prefix:
            metrics = {f"{self.prefix}/{k}": v for k, v in metrics.items()}
        return metrics


class Accuracy(BaseMetric):
    """Top-k classification accuracy, as a fraction in [0, 1].

    The model's ``predict`` output is ``(scores, labels)`` (MMEngine's tutorial
    shape) or a dict with ``scores`` (or ``logits``) and ``labels``.
    Metric names: ``top1``, ``top5``... under the prefix ``accuracy``.

    Args:
        topk: the k values.
        prefix: defaults to ``'accuracy'``.
    """

    default_prefix = "accuracy"

    def __init__(self, topk: int | Sequence[int] = (1,), prefix: str | None = None) -> None:
        super().__init__(prefix)
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

    Args:
        metrics: one metric or a list of them.
    """

    def __init__(self, metrics: BaseMetric | Sequence[BaseMetric]) -> None:
        self.metrics = [metrics] if isinstance(metrics, BaseMetric) else list(metrics)
        for metric in self.metrics:
            if not isinstance(metric, BaseMetric):
                raise TypeError(f"evaluator metrics must be BaseMetric instances, got {type(metric).__name__}")

    def process(self, data_samples: Any, data_batch: Any = None) -> None:
        for metric in self.metrics:
            metric.process(data_batch, data_samples)

    def evaluate(self, size: int | None = None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for metric in self.metrics:
            result = metric.evaluate(size)
            clash = set(result) & set(metrics)
            if clash:
                raise ValueError(f"metrics report the same names {sorted(clash)}; give them distinct prefixes")
            metrics.update(result)
        return {k: float(v) if isinstance(v, (int, float, torch.Tensor)) else v for k, v in metrics.items()}
