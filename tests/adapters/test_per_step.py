"""What the adapters do every step, and what they leave to their ticks (a few times a second).

Each test trains a framework's tiny run in this process with ``SHOW_INTERVAL`` set to an hour, so
the only ticks are the first step's and the run's end: whatever the run publishes in between was
published per step. A view must still get every step's values, at their steps, and every hook
call counted.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any

import pytest
import torch

from cockpit import events as ev
from cockpit.adapters import base

HOUR = 3600.0


def stage_calls(events: list[ev.Event], stage: str, hook: str) -> tuple[int, int]:
    """``(StageTimed events of stage, calls of hook in them)``."""
    timed = [e for e in events if isinstance(e, ev.StageTimed) and e.stage == stage]
    return len(timed), sum(1 for e in timed for name, _ in e.calls if name == hook)


def scalar(events: list[ev.Event], key: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events if isinstance(e, ev.ScalarUpdated) and e.key == key]


@pytest.fixture
def adapter_items(monkeypatch):
    """Counts ``Tensor.item()`` calls made by the adapters' code (each one waits for the device)."""
    calls = []
    item = torch.Tensor.item

    def counted(self: torch.Tensor) -> Any:
        if "cockpit/adapters" in sys._getframe(1).f_code.co_filename:
            calls.append(1)
        return item(self)

    monkeypatch.setattr(torch.Tensor, "item", counted)
    return calls


def mmengine_toy_run(tmp_path, name: str, max_iters: int, hook: Any) -> Any:
    """MMEngine's ``Runner``, trained on the toy data for ``max_iters`` iterations with the CockpitHook and ``hook``."""
    from mmengine.runner import Runner

    import cockpit.adapters.mmengine  # noqa: F401 - registers CockpitHook
    from adapters.mm_toys import ToyData, ToyModel

    runner = Runner(model=ToyModel(), work_dir=str(tmp_path / "work"), experiment_name=name,
                    train_dataloader=dict(dataset=ToyData(), sampler=dict(type="DefaultSampler", shuffle=False),
                                          batch_size=8, collate_fn=dict(type="default_collate")),
                    train_cfg=dict(by_epoch=False, max_iters=max_iters),
                    optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                    default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1000)),
                    custom_hooks=[dict(type="CockpitHook"), hook], log_level="WARNING")
    runner.train()
    return runner


def test_mmengine_publishes_every_iteration_at_its_ticks(tmp_path, monkeypatch):
    pytest.importorskip("mmengine")
    pytest.importorskip("cv2")
    from mmengine.hooks import Hook

    monkeypatch.setattr(base, "SHOW_INTERVAL", HOUR)

    class Follow(Hook):
        priority = "LOWEST"  # after CockpitHook, which makes the run in before_run

        def __init__(self) -> None:
            self.arrays: list[weakref.ref] = []
            self.kept: list[int] = []

        def before_train(self, runner: Any) -> None:
            run = next(h for h in runner.hooks if type(h).__name__ == "CockpitHook").run
            self.subscription = run.message_hub.subscribe()

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            # MMEngine's train/ history arrays of the iterations before this one: MMEngine has replaced them.
            self.kept.append(sum(ref() is not None for ref in self.arrays))
            self.arrays = [weakref.ref(history.data[0]) for key, history in runner.message_hub.log_scalars.items()
                           if key.startswith("train/")]

    follow = Follow()
    runner = mmengine_toy_run(tmp_path, "per_step", 12, follow)
    events = follow.subscription.poll()

    # No tick between: yet the adapter kept no history array of an iteration past its end (each holds the
    # whole history; a tick's worth of them made every step slower).
    assert follow.kept == [0] * 12

    # Every call counted, in two events: the first iteration's tick, and the run's end.
    for hook in ("CockpitHook", "LoggerHook"):
        events_count, calls = stage_calls(events, "after_train_iter", hook)
        assert calls == 12 and events_count <= 2
    # Every iteration's values, at their iterations, as MMEngine's own hub holds them.
    losses = scalar(events, "train/loss")
    assert [step for step, _ in losses] == list(range(12))
    assert [value for _, value in losses] == pytest.approx(list(runner.message_hub.get_scalar("train/loss").data[0]))
    assert [step for step, _ in scalar(events, "train/lr")] == list(range(12))
    assert [step for step, _ in scalar(events, "train/time")] == list(range(12))


def test_mmengine_counts_each_hook_call_at_once_while_no_view_listens(tmp_path, monkeypatch):
    """With no view, there is no event to make: each call goes straight to the hub's counters (what a view that
    attaches finds in its snapshot), not into a list kept until the next tick."""
    pytest.importorskip("mmengine")
    pytest.importorskip("cv2")
    from mmengine.hooks import Hook

    monkeypatch.setattr(base, "SHOW_INTERVAL", HOUR)

    class Count(Hook):
        priority = "LOWEST"

        def __init__(self) -> None:
            self.counted: list[int] = []

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            hub = next(h for h in runner.hooks if type(h).__name__ == "CockpitHook").run.message_hub
            self.counted.append(hub.hook_timings()["before_train_iter", "IterTimerHook"][0])

    count = Count()
    mmengine_toy_run(tmp_path, "unwatched", 6, count)
    assert count.counted == [1, 2, 3, 4, 5, 6]


def test_lightning_reads_the_losses_once_per_tick_and_counts_every_call(tmp_path, monkeypatch, adapter_items):
    pytest.importorskip("lightning")
    import lightning as L

    from adapters.lightning_train import ToyModule, data
    from cockpit.adapters.lightning import CockpitCallback

    monkeypatch.setattr(base, "SHOW_INTERVAL", HOUR)
    cockpit = CockpitCallback(work_dir=tmp_path / "work")

    class Follow(L.Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.subscription = cockpit.run.message_hub.subscribe()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self.losses.append(float(outputs["loss"]))

    follow = Follow()
    trainer = L.Trainer(max_steps=12, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, callbacks=[follow, cockpit],
                        default_root_dir=str(tmp_path))
    trainer.fit(ToyModule(), data(64, 0))
    events = follow.subscription.poll()

    assert adapter_items == []  # no .item() per step: the losses were read together, at the ticks
    assert [step for step, _ in scalar(events, "train/loss")] == list(range(12))
    assert [value for _, value in scalar(events, "train/loss")] == pytest.approx(follow.losses)
    assert [step for step, _ in scalar(events, "train/time")] == list(range(12))
    assert [step for step, _ in scalar(events, "train/data_time")] == list(range(1, 12))
    events_count, calls = stage_calls(events, "on_train_batch_end", "CockpitCallback")
    assert calls == 12 and events_count <= 2


def test_lightning_keeps_a_profiler_that_records(tmp_path):
    """With a profiler that does something, every action still reaches it (the adapter's timing rides on it)."""
    pytest.importorskip("lightning")
    import lightning as L
    from lightning.pytorch.profilers import SimpleProfiler

    from adapters.lightning_train import ToyModule, data
    from cockpit.adapters.lightning import CockpitCallback

    profiler = SimpleProfiler()
    trainer = L.Trainer(max_steps=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, profiler=profiler,
                        callbacks=[CockpitCallback(work_dir=tmp_path / "work")], default_root_dir=str(tmp_path))
    trainer.fit(ToyModule(), data(64, 0))
    recorded = profiler.recorded_durations
    assert len(recorded["[Callback]CockpitCallback.on_train_batch_end"]) == 3
    assert len(recorded["run_training_batch"]) == 3
    # The per-batch hooks the callback has no use for are not called at all (nothing to profile, nothing to pay).
    assert "[Callback]CockpitCallback.on_before_backward" not in recorded
    assert "[Callback]CockpitCallback.on_before_zero_grad" not in recorded


def test_hf_reads_the_losses_once_per_tick_and_sums_the_micro_batches(tmp_path, monkeypatch, adapter_items):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from adapters.hf_train import Tokens
    from cockpit.adapters.hf import CockpitCallback

    monkeypatch.setattr(base, "SHOW_INTERVAL", HOUR)
    cockpit = CockpitCallback(work_dir=tmp_path / "work")
    micro_losses: list[float] = []

    class Recording(Trainer):
        def training_step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
            loss = super().training_step(*args, **kwargs)
            micro_losses.append(float(loss))
            return loss

    class Follow(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 0:
                self.subscription = cockpit.run.message_hub.subscribe()

    follow = Follow()
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64))
    args = TrainingArguments(str(tmp_path / "out"), use_cpu=True, report_to=[], max_steps=6, save_strategy="no",
                             per_device_train_batch_size=4, gradient_accumulation_steps=2, logging_steps=100,
                             disable_tqdm=True, dataloader_num_workers=0, seed=0)
    Recording(model=model, args=args, train_dataset=Tokens(64, 0), callbacks=[cockpit, follow]).train()
    events = follow.subscription.poll()

    assert adapter_items == []
    losses = scalar(events, "train/loss")
    assert [step for step, _ in losses] == list(range(6))
    pairs = [micro_losses[i] + micro_losses[i + 1] for i in range(0, 12, 2)]
    assert [value for _, value in losses] == pytest.approx(pairs)
    assert [step for step, _ in scalar(events, "train/lr")] == list(range(6))
    events_count, calls = stage_calls(events, "on_step_end", "CockpitCallback")
    assert calls == 6 and events_count <= 2


def test_the_channel_passes_no_more_often_than_the_adapter_ticks(tmp_path, monkeypatch):
    """An adapter's events come at its ticks, so its channel thread wakes no more often: each pass takes the GIL
    from the training thread, with or without something to send."""
    servers = []

    class Recording(base.ChannelServer):
        def start(self) -> base.ChannelServer:
            servers.append(self)
            return super().start()

    monkeypatch.setattr(base, "ChannelServer", Recording)
    run = base.AdaptedRun(work_dir=tmp_path)
    run.start()
    try:
        assert len(servers) == 1 and servers[0].batch_interval >= base.SHOW_INTERVAL
    finally:
        run.finish()
