"""Train/val loops: counts, validation schedule, MMCV workflows, stopping and model modes."""

from __future__ import annotations

import pytest
import torch
from support import ToyData

from cockpit import BaseMetric, ConfigError, Hook

NO_IO = dict(checkpoint=None, logger=None)
TRAIN_BATCH = 8  # as in tiny_cfg


class Recorder(Hook):
    """Records every loop stage with ``runner.epoch``, ``runner.iter`` and the model's mode."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []
        self.modes: list[tuple[str, bool]] = []
        self.train_batches: list[torch.Tensor] = []
        self.val_batches: list[torch.Tensor] = []

    def _add(self, runner, stage: str) -> None:
        self.events.append((stage, runner.epoch, runner.iter))
        self.modes.append((stage, runner.model.training))

    def before_train(self, runner):
        self._add(runner, "before_train")

    def after_train(self, runner):
        self._add(runner, "after_train")

    def before_train_epoch(self, runner):
        self._add(runner, "before_train_epoch")

    def after_train_epoch(self, runner):
        self._add(runner, "after_train_epoch")

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._add(runner, "before_train_iter")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._add(runner, "after_train_iter")
        self.train_batches.append(data_batch[0])

    def before_val(self, runner):
        self._add(runner, "before_val")

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self._add(runner, "before_val_iter")
        self.val_batches.append(data_batch[0])

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._add(runner, "after_val_iter")

    def after_val(self, runner):
        self._add(runner, "after_val")

    # --- views ---------------------------------------------------------------
    def stages(self, *names: str) -> list[tuple[str, int, int]]:
        return [e for e in self.events if e[0] in names]

    def count(self, name: str) -> int:
        return len(self.stages(name))

    def phases(self) -> str:
        """'T' per finished train epoch, 'V' per validation run."""
        marks = {"after_train_epoch": "T", "after_val": "V"}
        return "".join(marks[s] for s, _, _ in self.events if s in marks)

    def steps(self) -> str:
        """'t' per train iteration, 'v' per val iteration, 'V' per validation run."""
        marks = {"after_train_iter": "t", "after_val_iter": "v", "after_val": "V"}
        return "".join(marks[s] for s, _, _ in self.events if s in marks)


def small_train(size: int = 16, sampler: str = "DefaultSampler") -> dict:
    """A train dataloader of ``size // 8`` batches (short epochs keep the schedule tests fast)."""
    return dict(dataset=dict(type=ToyData, size=size), sampler=dict(type=sampler, shuffle=True),
                batch_size=TRAIN_BATCH)


def run(make_runner, hook: Hook | None = None, **overrides):
    overrides.setdefault("default_hooks", NO_IO)
    runner = make_runner(**overrides)
    hook = hook or Recorder()
    runner.register_hook(hook)
    runner.train()
    return runner, hook


def dataset_rows(batch: torch.Tensor, data: ToyData) -> list[int]:
    """Indices of the rows of ``batch`` in ``data``."""
    matches = (batch[:, None, :] == data.x[None, :, :]).all(dim=2)
    assert (matches.sum(dim=1) == 1).all()
    return matches.float().argmax(dim=1).tolist()


# --- epoch-based -------------------------------------------------------------------
def test_epoch_based_counts_and_position(make_runner):
    # 40 samples in batches of 8: 5 iterations per epoch.
    runner, rec = run(make_runner, train_dataloader=small_train(40),
                      train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1))

    assert len(runner.train_dataloader) == 5
    iters = rec.stages("after_train_iter")
    assert len(iters) == 3 * 5
    # Inside after_train_iter, iter is the index of the current iteration (MMEngine).
    assert [(e, i) for _, e, i in iters] == [(i // 5, i) for i in range(15)]
    assert [e for _, e, _ in rec.stages("before_train_epoch")] == [0, 1, 2]
    # after_train_epoch sees the iterations done and the epoch that is ending.
    assert [(e, i) for _, e, i in rec.stages("after_train_epoch")] == [(0, 5), (1, 10), (2, 15)]
    assert runner.epoch == 3
    assert runner.iter == 15
    assert runner.max_iters == 15
    assert runner.train_loop.position() == {"epoch": 3, "iter": 15, "batch_in_epoch": 0}
    assert runner.message_hub.status == "finished"
    assert rec.count("before_train") == rec.count("after_train") == 1


def test_epoch_based_sees_every_sample_once_per_epoch_in_a_new_order(make_runner):
    runner, rec = run(make_runner, train_dataloader=small_train(32), train_cfg=dict(by_epoch=True, max_epochs=2),
                      val_cfg=None, val_dataloader=None, val_evaluator=None)
    data = ToyData(32)
    epochs = [sum((dataset_rows(b, data) for b in rec.train_batches[k * 4:(k + 1) * 4]), []) for k in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(32))
    assert epochs[0] != epochs[1]


@pytest.mark.parametrize(
    ("max_epochs", "val_begin", "val_interval", "expected"),
    [
        (5, 2, 2, [2, 4, 5]),
        (5, 1, 1, [1, 2, 3, 4, 5]),
        (4, 1, 3, [3, 4]),
        (6, 1, 2, [2, 4, 6]),
        (3, 4, 1, []),
    ],
)
def test_epoch_based_validation_schedule(make_runner, max_epochs, val_begin, val_interval, expected):
    runner, rec = run(make_runner, train_dataloader=small_train(16),
                      train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_begin=val_begin,
                                     val_interval=val_interval))
    # runner.epoch counts finished epochs, so it names the epoch validation ran after.
    assert [e for _, e, _ in rec.stages("before_val")] == expected
    assert rec.count("after_val") == len(expected)
    # Validation runs between epochs: after the epoch's after_train_epoch, before the next epoch.
    for epoch in expected:
        index = rec.events.index(("before_val", epoch, epoch * 2))
        assert rec.events[index - 1][0] == "after_train_epoch"
    assert runner.epoch == max_epochs


# --- iteration-based ---------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["DefaultSampler", "InfiniteSampler"])
def test_iter_based_counts_and_validation(make_runner, sampler):
    # 32 samples in batches of 8: a pass is 4 iterations, so 10 iterations cross two passes.
    runner, rec = run(make_runner, train_dataloader=small_train(32, sampler),
                      train_cfg=dict(by_epoch=False, max_iters=10, val_interval=3))
    iters = rec.stages("after_train_iter")
    assert [i for _, _, i in iters] == list(range(10))
    assert runner.iter == 10
    assert runner.max_iters == 10
    # Validation after iterations 3, 6, 9 and the last (10).
    assert [i for _, _, i in rec.stages("before_val")] == [3, 6, 9, 10]
    assert rec.steps() == ("ttt" + "vvV") * 3 + "t" + "vvV"
    # An iteration-based run is one long epoch.
    assert rec.count("before_train_epoch") == rec.count("after_train_epoch") == 1
    assert rec.events[1][0] == "before_train_epoch"
    assert [s for s, _, _ in rec.events[-3:]] == ["after_val", "after_train_epoch", "after_train"]
    # The data keeps flowing across passes: every pass of 4 batches is a new permutation.
    data = ToyData(32)
    passes = [sum((dataset_rows(b, data) for b in rec.train_batches[k * 4:(k + 1) * 4]), []) for k in range(2)]
    assert sorted(passes[0]) == sorted(passes[1]) == list(range(32))
    assert passes[0] != passes[1]
    assert all(len(b) == TRAIN_BATCH for b in rec.train_batches)
    assert runner.message_hub.status == "finished"


def test_iter_based_val_begin(make_runner):
    _, rec = run(make_runner, train_dataloader=small_train(16),
                 train_cfg=dict(by_epoch=False, max_iters=20, val_begin=10, val_interval=4))
    assert [i for _, _, i in rec.stages("before_val")] == [12, 16, 20]


# --- workflows ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("workflow", "max_epochs", "expected"),
    [
        ([("train", 2), ("val", 1)], 4, "TTVTTV"),
        ([("train", 2), ("val", 1)], 3, "TTVTV"),  # MMCV: the val phase still follows the last epoch
        ([("val", 1), ("train", 1)], 2, "VTVT"),
        ([("train", 1)], 3, "TTT"),
        ([("train", 3), ("val", 2)], 2, "TTVV"),
    ],
)
def test_epoch_workflow_order(make_runner, workflow, max_epochs, expected):
    # val_interval=1 would validate after every epoch: the workflow replaces it.
    runner, rec = run(make_runner, train_dataloader=small_train(16),
                      train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1, workflow=workflow))
    assert rec.phases() == expected
    assert rec.count("after_train_iter") == max_epochs * 2
    assert runner.epoch == max_epochs
    # Each val phase is a whole pass over the val loader (32 samples / 16 = 2 batches).
    assert rec.count("after_val_iter") == 2 * expected.count("V")


@pytest.mark.parametrize(
    ("workflow", "max_iters", "expected"),
    [
        ([("train", 3), ("val", 2)], 6, "tttvvV" * 2),
        ([("train", 4), ("val", 1)], 6, "ttttvV" + "ttvV"),
        ([("val", 1), ("train", 3)], 6, "vVttt" * 2),
        ([("train", 2), ("val", 3)], 4, "ttvvvV" * 2),
    ],
)
def test_iter_workflow_order(make_runner, workflow, max_iters, expected):
    runner, rec = run(make_runner, train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=1,
                                                  workflow=workflow))
    assert rec.steps() == expected
    assert runner.iter == max_iters
    assert rec.count("before_train_epoch") == rec.count("after_train_epoch") == 1


def test_iter_workflow_val_phases_walk_through_the_val_loader(make_runner):
    """MMCV's IterBasedRunner calls ``next()`` on one IterLoader n times per val phase: no batch is skipped."""
    runner, rec = run(make_runner, train_cfg=dict(by_epoch=False, max_iters=6, workflow=[("train", 2), ("val", 1)]))
    val_loader_batches = [inputs for inputs, _ in runner.val_dataloader]
    assert len(val_loader_batches) == 2
    assert len(rec.val_batches) == 3
    seen = [next(i for i, b in enumerate(val_loader_batches) if torch.equal(b, batch)) for batch in rec.val_batches]
    # Three phases of one batch each: batch 0, batch 1, then batch 0 again (the loader cycles).
    assert seen == [0, 1, 0]


class CountSamples(BaseMetric):
    default_prefix = "seen"

    def process(self, data_batch, data_samples):
        self.results.append(len(data_samples[1]))

    def compute_metrics(self, results):
        return {"samples": sum(results), "batches": len(results)}


def test_iter_workflow_val_phase_evaluates_its_own_batches(make_runner):
    """Each ('val', 3) phase reports metrics over exactly its 3 batches (cycling the 2-batch val loader)."""

    class Metrics(Hook):
        def __init__(self):
            self.metrics = []

        def after_val_epoch(self, runner, metrics=None):
            self.metrics.append(metrics)

    hook = Metrics()
    runner = make_runner(default_hooks=NO_IO, val_evaluator=dict(type=CountSamples),
                         train_cfg=dict(by_epoch=False, max_iters=4, workflow=[("train", 2), ("val", 3)]))
    runner.register_hook(hook)
    runner.train()
    assert hook.metrics == [{"seen/samples": 48.0, "seen/batches": 3.0}] * 2


@pytest.mark.parametrize("by_epoch", [True, False])
@pytest.mark.parametrize(
    "workflow",
    [
        [("val", 1)],
        [("train", 0)],
        [("train", -1)],
        [("test", 1)],
        [("train",)],
        [("train", 1, 2)],
        ["train"],
        [("train", 1.5)],
        [("train", "2")],
    ],
    ids=["no-train", "zero", "negative", "unknown-mode", "short", "long", "bare-string", "float", "str-count"],
)
def test_bad_workflow_is_a_config_error(make_runner, by_epoch, workflow):
    length = dict(max_epochs=2) if by_epoch else dict(max_iters=4)
    runner = make_runner(default_hooks=NO_IO, train_cfg=dict(by_epoch=by_epoch, workflow=workflow, **length))
    with pytest.raises(ConfigError) as info:
        runner.train()
    assert info.value.key == "train_cfg.workflow"


@pytest.mark.parametrize("by_epoch", [True, False])
def test_val_phase_without_validation_is_a_config_error(make_runner, by_epoch):
    length = dict(max_epochs=2) if by_epoch else dict(max_iters=4)
    runner = make_runner(default_hooks=NO_IO, val_dataloader=None, val_evaluator=None, val_cfg=None,
                         train_cfg=dict(by_epoch=by_epoch, workflow=[("train", 1), ("val", 1)], **length))
    with pytest.raises(ConfigError, match="no validation"):
        runner.train()


@pytest.mark.parametrize("by_epoch", [True, False])
def test_train_only_workflow_needs_no_validation(make_runner, by_epoch):
    length = dict(max_epochs=2) if by_epoch else dict(max_iters=4)
    runner, rec = run(make_runner, val_dataloader=None, val_evaluator=None, val_cfg=None,
                      train_dataloader=small_train(16), train_cfg=dict(by_epoch=by_epoch, workflow=[("train", 1)],
                                                                      **length))
    assert rec.count("after_train_iter") == 4
    assert rec.count("after_val") == 0


# --- stopping ----------------------------------------------------------------------
class StopAt(Recorder):
    def __init__(self, at_iter: int, stage: str = "after_train_iter") -> None:
        super().__init__()
        self.at_iter = at_iter
        self.stage = stage

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        super().before_train_iter(runner, batch_idx, data_batch)
        if self.stage == "before_train_iter" and runner.iter == self.at_iter:
            runner.stop()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if self.stage == "after_train_iter" and runner.iter == self.at_iter:
            runner.stop()


@pytest.mark.parametrize("stage", ["after_train_iter", "before_train_iter"])
def test_stop_mid_epoch(make_runner, stage):
    # Iteration 10 is batch 2 of epoch 1 (8 batches per epoch).
    runner, rec = run(make_runner, StopAt(10, stage), train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1))
    assert rec.count("after_train_iter") == 11  # the current iteration completes
    assert runner.iter == 11
    assert runner.epoch == 1
    assert runner.message_hub.status == "stopped"
    assert runner.train_loop.position() == {"epoch": 1, "iter": 11, "batch_in_epoch": 3}
    # Epoch 0 ended normally (and was validated); epoch 1 never ends, nothing runs after the stop.
    assert rec.count("after_train_epoch") == 1
    assert rec.count("after_val") == 1
    assert rec.events[-1][0] == "after_train"


def test_stop_iter_based(make_runner):
    runner, rec = run(make_runner, StopAt(4), train_cfg=dict(by_epoch=False, max_iters=20, val_interval=2))
    assert rec.count("after_train_iter") == 5
    assert runner.iter == 5
    assert runner.message_hub.status == "stopped"
    assert runner.train_loop.position()["iter"] == 5
    # Validation after iteration 2 and 4 ran; the stop came after iteration 5's step, so no more.
    assert [i for _, _, i in rec.stages("before_val")] == [2, 4]


def test_stop_inside_an_epoch_workflow(make_runner):
    runner, rec = run(make_runner, StopAt(3), train_dataloader=small_train(48),
                      train_cfg=dict(by_epoch=True, max_epochs=4, workflow=[("train", 2), ("val", 1)]))
    assert rec.count("after_train_iter") == 4
    assert rec.count("after_val") == 0
    assert runner.message_hub.status == "stopped"
    assert runner.train_loop.position() == {"epoch": 0, "iter": 4, "batch_in_epoch": 4}


def test_no_stop_means_finished(make_runner):
    runner, _ = run(make_runner, train_dataloader=small_train(16), train_cfg=dict(by_epoch=True, max_epochs=1))
    assert runner.message_hub.status == "finished"
    assert runner.train_loop.stop_training is False


# --- model modes -------------------------------------------------------------------
def _check_modes(rec: Recorder) -> None:
    assert rec.count("after_val_iter") > 0
    for stage, training in rec.modes:
        if stage in ("before_train_iter", "after_train_iter"):
            assert training, stage
        if stage in ("before_val_iter", "after_val_iter"):
            assert not training, stage
    # The first train iteration after each validation runs in train mode again.
    for index, (stage, _) in enumerate(rec.modes):
        if stage == "after_val":
            following = [t for s, t in rec.modes[index:] if s == "before_train_iter"]
            if following:
                assert following[0]


@pytest.mark.parametrize(
    "train_cfg",
    [
        dict(by_epoch=True, max_epochs=2, val_interval=1),
        dict(by_epoch=False, max_iters=6, val_interval=2),
        dict(by_epoch=True, max_epochs=2, workflow=[("val", 1), ("train", 1)]),
        dict(by_epoch=False, max_iters=6, workflow=[("train", 2), ("val", 1)]),
    ],
    ids=["epoch", "iter", "epoch-workflow", "iter-workflow"],
)
def test_model_modes(make_runner, train_cfg):
    runner, rec = run(make_runner, train_dataloader=small_train(16), train_cfg=train_cfg)
    _check_modes(rec)
    assert runner.model.training


def test_standalone_val_restores_the_mode(make_runner):
    runner = make_runner(default_hooks=NO_IO)
    rec = Recorder()
    runner.register_hook(rec)
    runner.model.train()
    metrics = runner.val()
    assert set(metrics) == {"accuracy/top1"}
    assert [t for s, t in rec.modes if s == "before_val_iter"] == [False, False]
    assert runner.model.training
    runner.model.eval()
    runner.val()
    assert not runner.model.training


# --- the safe point ------------------------------------------------------------------
def test_the_safe_point_asks_whether_the_run_is_distributed_once_a_run(make_runner, monkeypatch):
    """Whether the run is distributed cannot change while it goes on: the steering notes it when the
    run starts, not at each of the safe points between iterations (every one of which still runs)."""
    import cockpit.steering as steering

    asked = []
    monkeypatch.setattr(steering, "is_distributed", lambda: (asked.append(True), False)[1])
    safe_points = []
    runner = make_runner(train_dataloader=small_train(32), train_cfg=dict(by_epoch=True, max_epochs=2),
                         default_hooks=NO_IO)
    original = runner.steering.safe_point
    runner.steering.safe_point = lambda: (safe_points.append(runner.iter), original())[1]
    runner.train()
    assert len(asked) == 1
    assert safe_points == [1, 2, 3, 4, 4, 5, 6, 7, 8, 8]  # after each iteration, and between epochs


# --- the collector -------------------------------------------------------------------
def test_a_run_freezes_its_objects_without_a_full_collection_and_unfreezes_them_after(make_runner):
    """A full collection at the start walks every object torch made at import (50-200 ms a run): the
    run collects only the young generations before it freezes what lives, and gives the frozen
    objects back to the collector when it ends."""
    import gc

    seen: list[tuple[int, int]] = []  # (generation, objects frozen) of each collection that starts

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            seen.append((info["generation"], gc.get_freeze_count()))

    frozen_during = []

    class Probe(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            frozen_during.append(gc.get_freeze_count())

    runner = make_runner(train_dataloader=small_train(32), train_cfg=dict(by_epoch=True, max_epochs=1),
                         default_hooks=NO_IO)
    runner.register_hook(Probe())
    was_enabled = gc.isenabled()
    gc.disable()  # only the collections the run asks for
    gc.callbacks.append(note)
    try:
        runner.train()
    finally:
        gc.callbacks.remove(note)
        if was_enabled:
            gc.enable()
    assert frozen_during and all(count > 0 for count in frozen_during)  # frozen while it trains
    assert seen and all(generation < 2 for generation, _ in seen), seen
    assert gc.get_freeze_count() == 0
