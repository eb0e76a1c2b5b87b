"""Samplers (order from seed and epoch, resumable starts, sharding), metrics, the evaluator, BaseModel."""

from __future__ import annotations

from itertools import islice

import pytest
import torch
from torch import nn

import cockpit.data
from cockpit import (
    Accuracy,
    BaseMetric,
    BaseModel,
    DefaultSampler,
    Evaluator,
    InfiniteSampler,
    OptimWrapper,
)

NO_IO = dict(checkpoint=None, logger=None)


def as_world(monkeypatch, rank: int, world_size: int) -> None:
    """Make samplers built from now on see this rank and world size (no process group needed)."""
    monkeypatch.setattr(cockpit.data, "_rank_and_world", lambda: (rank, world_size))


# --- DefaultSampler ------------------------------------------------------------------------
def test_default_sampler_order_depends_only_on_seed_and_epoch():
    data = range(20)
    a, b = DefaultSampler(data, seed=7), DefaultSampler(data, seed=7)
    a.set_epoch(3)
    b.set_epoch(0)
    list(b)  # a pass over epoch 0 changes nothing about epoch 3
    b.set_epoch(3)
    first = list(a)
    assert first == list(b)
    assert first == list(a)  # iterating again gives the same order
    assert sorted(first) == list(range(20))
    assert first == a.order(3)

    a.set_epoch(4)
    assert list(a) != first
    assert sorted(a) == list(range(20))
    other_seed = DefaultSampler(data, seed=8)
    other_seed.set_epoch(3)
    assert list(other_seed) != first
    # The order is a function of seed + epoch (MMEngine's DefaultSampler).
    shifted = DefaultSampler(data, seed=6)
    shifted.set_epoch(4)
    assert list(shifted) == first


def test_default_sampler_does_not_touch_the_global_rng():
    sampler = DefaultSampler(range(10), seed=1)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    list(sampler)
    assert torch.equal(torch.rand(3), expected)


def test_default_sampler_without_shuffle_is_sequential():
    sampler = DefaultSampler(range(7), shuffle=False)
    sampler.set_epoch(5)
    assert list(sampler) == list(range(7))
    assert len(sampler) == 7


@pytest.mark.parametrize("start", [0, 1, 5, 19, 20])
def test_default_sampler_set_start_gives_the_tail(start):
    sampler = DefaultSampler(range(20), seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_start(start)
    assert len(sampler) == 20 - start
    assert list(sampler) == full[start:]
    # The start applies to one pass only.
    assert len(sampler) == 20
    assert list(sampler) == full


def test_default_sampler_set_start_is_clamped():
    sampler = DefaultSampler(range(6), seed=0)
    sampler.set_start(100)
    assert list(sampler) == []
    sampler.set_start(-3)
    assert list(sampler) == sampler.order(0)


def test_default_sampler_resume_through_a_dataloader():
    """Skipping k batches with set_start(k * batch_size) yields exactly the rest of the epoch's batches."""
    dataset = torch.arange(24).float()
    sampler = DefaultSampler(dataset, seed=5)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler)
    sampler.set_epoch(1)
    batches = [b.tolist() for b in loader]
    sampler.set_epoch(1)
    sampler.set_start(2 * 4)
    assert [b.tolist() for b in loader] == batches[2:]


@pytest.mark.parametrize("round_up", [True, False])
def test_default_sampler_shards_across_ranks(monkeypatch, round_up):
    size, world = 10, 3
    shards = []
    for rank in range(world):
        as_world(monkeypatch, rank, world)
        sampler = DefaultSampler(range(size), seed=4, round_up=round_up)
        sampler.set_epoch(1)
        shards.append(list(sampler))
        assert len(sampler) == len(shards[-1])
    as_world(monkeypatch, 0, 1)  # the unsharded order, for reference
    permutation = DefaultSampler(range(size), seed=4).order(1)
    if round_up:
        # Every rank gets ceil(10 / 3) = 4 samples; the order is padded from its start.
        assert [len(s) for s in shards] == [4, 4, 4]
        padded = permutation + permutation[:2]
        assert shards == [padded[r::world] for r in range(world)]
    else:
        assert [len(s) for s in shards] == [4, 3, 3]
        assert shards == [permutation[r::world] for r in range(world)]
        assert sorted(sum(shards, [])) == list(range(size))
    assert set(sum(shards, [])) == set(range(size))


def test_default_sampler_set_start_on_a_shard(monkeypatch):
    as_world(monkeypatch, 1, 2)
    sampler = DefaultSampler(range(11), seed=2)
    assert sampler.num_samples == 6
    full = list(sampler)
    sampler.set_start(4)
    assert list(sampler) == full[4:]


# --- InfiniteSampler -------------------------------------------------------------------------
def stream(sampler, n: int) -> list[int]:
    return list(islice(iter(sampler), n))


def test_infinite_sampler_reshuffles_each_pass():
    sampler = InfiniteSampler(range(5), seed=9)
    indices = stream(sampler, 15)
    passes = [indices[0:5], indices[5:10], indices[10:15]]
    assert all(sorted(p) == list(range(5)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    assert stream(InfiniteSampler(range(5), seed=9), 15) == indices
    # Pass k is shuffled with seed + epoch + k, like DefaultSampler's epoch k.
    reference = DefaultSampler(range(5), seed=9)
    assert passes == [reference.order(k) for k in range(3)]


def test_infinite_sampler_set_epoch_moves_to_that_pass():
    sampler = InfiniteSampler(range(5), seed=9)
    full = stream(sampler, 20)
    sampler.set_epoch(2)
    assert stream(sampler, 10) == full[10:20]


@pytest.mark.parametrize("start", [0, 3, 5, 7, 12, 15])
def test_infinite_sampler_set_start_skips_exactly_n(start):
    sampler = InfiniteSampler(range(5), seed=11)
    full = stream(sampler, start + 12)
    sampler.set_start(start)
    assert stream(sampler, 12) == full[start:start + 12]
    # The skip applies once.
    assert stream(sampler, 12) == full[:12]


def test_infinite_sampler_without_shuffle_cycles():
    assert stream(InfiniteSampler(range(3), shuffle=False), 7) == [0, 1, 2, 0, 1, 2, 0]


def test_infinite_sampler_shards(monkeypatch):
    as_world(monkeypatch, 0, 1)
    whole = InfiniteSampler(range(6), seed=3)
    passes = [stream(whole, 12)[0:6], stream(whole, 12)[6:12]]
    for rank in range(2):
        as_world(monkeypatch, rank, 2)
        sampler = InfiniteSampler(range(6), seed=3)
        assert stream(sampler, 6) == passes[0][rank::2] + passes[1][rank::2]
        sampler.set_start(4)  # skips pass 0 (3 samples) and one sample of pass 1
        assert stream(sampler, 2) == passes[1][rank::2][1:]


# --- Accuracy --------------------------------------------------------------------------------
SCORES = torch.tensor([
    [0.1, 0.7, 0.2],  # label 1: top-1 hit
    [0.5, 0.3, 0.2],  # label 1: top-2 hit
    [0.2, 0.3, 0.5],  # label 0: miss even in top-2
    [0.6, 0.3, 0.1],  # label 2: miss even in top-2
])
LABELS = torch.tensor([1, 1, 0, 2])


def test_accuracy_top1_and_topk():
    metric = Accuracy(topk=(1, 2, 3))
    metric.process(None, (SCORES, LABELS))
    assert metric.evaluate() == {"accuracy/top1": 0.25, "accuracy/top2": 0.5, "accuracy/top3": 1.0}


def test_accuracy_accumulates_over_batches_by_sample_count():
    metric = Accuracy(topk=2)
    metric.process(None, (SCORES[:1], LABELS[:1]))
    metric.process(None, (SCORES[1:], LABELS[1:]))
    assert metric.evaluate() == {"accuracy/top2": 0.5}


@pytest.mark.parametrize("key", ["scores", "logits"])
def test_accuracy_dict_predictions(key):
    metric = Accuracy()
    metric.process(None, {key: SCORES, "labels": LABELS})
    assert metric.evaluate() == {"accuracy/top1": 0.25}


def test_accuracy_k_larger_than_the_classes_counts_everything():
    metric = Accuracy(topk=(1, 5))
    metric.process(None, (SCORES, LABELS))
    assert metric.evaluate()["accuracy/top5"] == 1.0


def test_accuracy_prefix():
    metric = Accuracy(prefix="cls")
    metric.process(None, (SCORES, LABELS))
    assert metric.evaluate() == {"cls/top1": 0.25}


def test_metric_forgets_after_evaluate():
    metric = Accuracy()
    metric.process(None, (SCORES, LABELS))
    metric.evaluate()
    assert metric.results == []
    with pytest.raises(RuntimeError, match="no results"):
        metric.evaluate()


@pytest.mark.parametrize("topk", [0, (), (1, 0), (1, "2"), -1])
def test_accuracy_bad_topk(topk):
    with pytest.raises(ValueError):
        Accuracy(topk=topk)


def test_accuracy_needs_scores_and_labels():
    with pytest.raises(ValueError):
        Accuracy().process(None, {"scores": SCORES})


# --- Evaluator -------------------------------------------------------------------------------
class CountMetric(BaseMetric):
    """Counts samples and records which data batches it saw."""

    default_prefix = "count"

    def __init__(self, prefix: str | None = None) -> None:
        super().__init__(prefix)
        self.batches = []

    def process(self, data_batch, data_samples):
        self.batches.append(data_batch)
        self.results.append(len(data_samples[1]))

    def compute_metrics(self, results):
        return {"n": sum(results), "tensor": torch.tensor(2.5)}


def test_evaluator_with_two_metrics():
    counter = CountMetric()
    evaluator = Evaluator([Accuracy(topk=(1, 2)), counter])
    evaluator.process((SCORES[:2], LABELS[:2]), data_batch="batch-0")
    evaluator.process((SCORES[2:], LABELS[2:]), data_batch="batch-1")
    metrics = evaluator.evaluate()
    assert metrics == {"accuracy/top1": 0.25, "accuracy/top2": 0.5, "count/n": 4.0, "count/tensor": 2.5}
    assert all(type(v) is float for v in metrics.values())
    assert counter.batches == ["batch-0", "batch-1"]


def test_evaluator_single_metric():
    evaluator = Evaluator(Accuracy())
    evaluator.process((SCORES, LABELS))
    assert evaluator.evaluate() == {"accuracy/top1": 0.25}


def test_evaluator_name_clash_raises():
    evaluator = Evaluator([Accuracy(), Accuracy(topk=(1, 2))])
    evaluator.process((SCORES, LABELS))
    with pytest.raises(ValueError, match="accuracy/top1"):
        evaluator.evaluate()
    distinct = Evaluator([Accuracy(prefix="a"), Accuracy(prefix="b")])
    distinct.process((SCORES, LABELS))
    assert distinct.evaluate() == {"a/top1": 0.25, "b/top1": 0.25}


def test_evaluator_rejects_non_metrics():
    with pytest.raises(TypeError):
        Evaluator([Accuracy(), object()])


def test_runner_val_with_two_metrics(make_runner):
    runner = make_runner(default_hooks=NO_IO, val_evaluator=[dict(type="Accuracy", topk=(1, 2)),
                                                             dict(type=CountMetric)])
    metrics = runner.val()
    assert set(metrics) == {"accuracy/top1", "accuracy/top2", "count/n", "count/tensor"}
    assert metrics["count/n"] == 32.0  # the whole val set, once
    assert 0.0 <= metrics["accuracy/top1"] <= metrics["accuracy/top2"] <= 1.0
    assert runner.message_hub.get_scalar("val/accuracy/top1").current() == pytest.approx(metrics["accuracy/top1"])


# --- BaseModel ---------------------------------------------------------------------------------
def test_parse_losses_sums_the_loss_keys_and_logs_everything():
    p = nn.Parameter(torch.tensor(1.0))
    losses = {
        "acc": p * 100,  # logged, not part of the loss
        "loss_cls": torch.stack([p * 1.0, p * 3.0]),  # mean 2
        "aux_loss": [p * 1.0, torch.stack([p * 2.0, p * 4.0])],  # 1 + 3 = 4
    }
    loss, log_vars = BaseModel().parse_losses(losses)
    assert float(loss.detach()) == 6.0
    assert list(log_vars) == ["loss", "acc", "loss_cls", "aux_loss"]
    assert {k: v.item() for k, v in log_vars.items()} == {"loss": 6.0, "acc": 100.0, "loss_cls": 2.0, "aux_loss": 4.0}
    # As in MMEngine, detached 0-d tensors: a hook may call outputs['loss'].item()
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad for v in log_vars.values())
    loss.backward()
    assert float(p.grad) == 6.0  # d(2p + 4p)/dp: 'acc' does not contribute


def test_parse_losses_single_loss():
    loss, log_vars = BaseModel().parse_losses({"loss": torch.tensor([1.0, 2.0, 6.0])})
    assert float(loss) == 3.0
    assert {k: v.item() for k, v in log_vars.items()} == {"loss": 3.0}


def test_parse_losses_without_a_loss_key():
    with pytest.raises(ValueError, match="loss"):
        BaseModel().parse_losses({"acc": torch.tensor(1.0), "los": torch.tensor(2.0)})


@pytest.mark.parametrize("losses", [torch.tensor(1.0), [torch.tensor(1.0)], ("loss", torch.tensor(1.0))])
def test_parse_losses_needs_a_dict(losses):
    with pytest.raises(TypeError):
        BaseModel().parse_losses(losses)


@pytest.mark.parametrize("value", [1.0, "0.5", [torch.tensor(1.0), 2.0]])
def test_parse_losses_rejects_non_tensor_values(value):
    with pytest.raises(TypeError, match="loss_x"):
        BaseModel().parse_losses({"loss_x": value})


class ArgsModel(BaseModel):
    """Records how it was called; its loss is its one weight."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(2.0))
        self.calls: list[tuple[str, tuple, dict]] = []

    def forward(self, *args, mode="tensor", **kwargs):
        self.calls.append((mode, args, kwargs))
        if mode == "loss":
            return {"loss_w": self.weight * 1.0, "weight": self.weight.detach()}
        return "predictions"


def test_dict_batches_are_keywords_and_tuples_positional():
    model = ArgsModel()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    x, y = torch.randn(2, 4), torch.tensor([0, 1])

    log_vars = model.train_step({"inputs": x, "data_samples": y}, optim_wrapper=wrapper)
    mode, args, kwargs = model.calls[-1]
    assert (mode, args) == ("loss", ())
    assert set(kwargs) == {"inputs", "data_samples"}
    assert kwargs["inputs"] is x and kwargs["data_samples"] is y
    assert float(model.weight.detach()) == pytest.approx(1.5)  # one SGD step on d(w)/dw = 1
    # the values of the step, not views of parameters that the step changed since
    assert {k: v.item() for k, v in log_vars.items()} == {"loss": 2.0, "loss_w": 2.0, "weight": 2.0}

    model.train_step((x, y), optim_wrapper=wrapper)
    mode, args, kwargs = model.calls[-1]
    assert mode == "loss" and kwargs == {}
    assert len(args) == 2 and args[0] is x and args[1] is y

    assert model.val_step([x, y]) == "predictions"
    mode, args, kwargs = model.calls[-1]
    assert mode == "predict" and kwargs == {} and args[0] is x and args[1] is y

    assert model.test_step({"inputs": x}) == "predictions"
    mode, args, kwargs = model.calls[-1]
    assert (mode, args) == ("predict", ()) and set(kwargs) == {"inputs"}

    model.val_step(x)
    mode, args, kwargs = model.calls[-1]
    assert mode == "predict" and len(args) == 1 and args[0] is x and kwargs == {}


def test_val_step_runs_without_gradients():
    class GradModel(ArgsModel):
        def forward(self, *args, mode="tensor", **kwargs):
            super().forward(*args, mode=mode, **kwargs)
            return torch.is_grad_enabled()

    model = GradModel()
    assert model.val_step((torch.zeros(1),)) is False
    assert model.test_step((torch.zeros(1),)) is False
