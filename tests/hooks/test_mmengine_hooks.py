"""Hooks behave as MMEngine 0.10.7's do: generic methods, helpers, custom stages, the order around a
resume, and the model's ``init_weights``.

Each expectation is MMEngine's behaviour, read from ``mmengine/hooks/hook.py`` and
``mmengine/runner/runner.py`` (``train``, ``call_hook``, ``_init_model_weights``).
"""

from __future__ import annotations

import pytest
import torch
from support import ToyNet

from cockpit import Hook


class Generic(Hook):
    """Overrides only MMEngine's generic methods; records what reached them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def _before_epoch(self, runner, mode: str = "train") -> None:
        self.calls.append(("before_epoch", mode))

    def _after_epoch(self, runner, mode: str = "train") -> None:
        self.calls.append(("after_epoch", mode))

    def _before_iter(self, runner, batch_idx, data_batch=None, mode: str = "train") -> None:
        self.calls.append(("before_iter", mode))

    def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None, mode: str = "train") -> None:
        self.calls.append(("after_iter", mode))


def _hook(runner, cls: type) -> Hook:
    return next(h for h in runner.hooks if isinstance(h, cls))


def test_generic_methods_serve_the_train_val_and_test_stages(make_runner):
    runner = make_runner(custom_hooks=[Generic()], default_hooks=dict(checkpoint=None),
                         test_dataloader=dict(dataset=dict(type="toys.ToyData", size=16, seed=2), batch_size=8),
                         test_evaluator=dict(type="Accuracy"), test_cfg=dict())
    hook = _hook(runner, Generic)
    assert {"before_train_iter", "after_val_iter", "before_test_epoch", "after_test_epoch"} <= set(
        hook.get_triggered_stages())
    runner.train()
    runner.test()
    count = {}
    for call in hook.calls:
        count[call] = count.get(call, 0) + 1
    # 2 epochs x 8 iterations of training, 2 validations x 2 batches, 1 test of 2 batches
    assert count[("before_iter", "train")] == count[("after_iter", "train")] == 16
    assert count[("before_epoch", "train")] == count[("after_epoch", "train")] == 2
    assert count[("before_iter", "val")] == 4 and count[("after_epoch", "val")] == 2
    assert count[("before_iter", "test")] == 2 and count[("after_epoch", "test")] == 1


def test_a_hook_overriding_nothing_is_called_at_no_stage():
    assert Hook().get_triggered_stages() == []


class Helpers(Hook):
    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.seen.append(("iter", runner.iter, self.every_n_train_iters(runner, 3), self.every_n_inner_iters(batch_idx, 4),
                          self.end_of_epoch(runner.train_dataloader, batch_idx), self.is_last_train_iter(runner)))

    def after_train_epoch(self, runner) -> None:
        self.seen.append(("epoch", runner.epoch, self.every_n_epochs(runner, 2), self.every_n_epochs(runner, 1, start=2),
                          self.is_last_train_epoch(runner)))


def test_mmengines_hook_helpers(make_runner):
    runner = make_runner(custom_hooks=[Helpers()], default_hooks=dict(checkpoint=None))
    runner.train()
    seen = _hook(runner, Helpers).seen
    iters = [s for s in seen if s[0] == "iter"]
    assert [s[1] for s in iters if s[2]] == [2, 5, 8, 11, 14]        # (iter + 1) % 3 == 0
    assert [s[1] for s in iters if s[3]] == [3, 7, 11, 15]           # (batch_idx + 1) % 4 == 0
    assert [s[1] for s in iters if s[4]] == [7, 15]                  # the last batch of each epoch
    assert [s[1] for s in iters if s[5]] == [15]
    epochs = [s for s in seen if s[0] == "epoch"]
    assert [(s[1], s[2], s[3], s[4]) for s in epochs] == [(0, False, False, False), (1, True, True, True)]


class Warmup(Hook):
    def __init__(self) -> None:
        self.calls: list[int] = []

    def before_warmup_iter(self, runner, step: int) -> None:
        self.calls.append(step)


def test_a_custom_stage_calls_every_hook_that_has_the_method(make_runner):
    runner = make_runner(custom_hooks=[Warmup(), Warmup()])
    runner.call_hook("before_warmup_iter", step=7)
    assert [h.calls for h in runner.hooks if isinstance(h, Warmup)] == [[7], [7]]
    runner.call_hook("no_hook_has_this_stage")  # MMEngine calls nobody and goes on
    with pytest.raises(ValueError, match="not a hook stage"):
        runner.call_hook("__init__")


class Order(Hook):
    """An EMA-like hook: builds its state in before_run, fills it from the checkpoint."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.built = False

    def before_run(self, runner) -> None:
        self.order.append("before_run")
        self.built = True

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        assert self.built, "after_load_checkpoint came before before_run"
        self.order.append("after_load_checkpoint")

    def before_train(self, runner) -> None:
        self.order.append("before_train")


def test_resume_calls_before_run_then_after_load_checkpoint_then_before_train(make_runner):
    make_runner().train()
    runner = make_runner(resume=True, custom_hooks=[Order()], train_cfg=dict(by_epoch=True, max_epochs=3))
    runner.train()
    assert _hook(runner, Order).order == ["before_run", "after_load_checkpoint", "before_train"]


class Initialised(ToyNet):
    calls = 0

    def init_weights(self) -> None:
        type(self).calls += 1
        for parameter in self.parameters():
            torch.nn.init.constant_(parameter, 0.25)


def test_train_calls_init_weights_and_a_loaded_checkpoint_overwrites_it(make_runner, tmp_path):
    Initialised.calls = 0
    runner = make_runner(model=dict(type=Initialised), default_hooks=dict(checkpoint=None),
                         train_cfg=dict(by_epoch=True, max_epochs=1))
    first = [p.detach().clone() for p in runner.model.parameters()]
    assert not all(bool((p == 0.25).all()) for p in first), "built with torch's own initialisation"

    class Look(Hook):
        def before_train(self, runner) -> None:
            self.values = [p.detach().clone() for p in runner.model.parameters()]

    runner.register_hook(Look())
    runner.train()
    assert Initialised.calls == 1
    assert all(bool((p == 0.25).all()) for p in _hook(runner, Look).values)
    # val() alone does not initialise (MMEngine's val() has no _init_model_weights)
    runner.val()
    assert Initialised.calls == 1

    torch.save({"state_dict": {k: torch.full_like(v, 0.5) for k, v in runner.model.state_dict().items()}},
               tmp_path / "weights.pth")
    loaded = make_runner(model=dict(type=Initialised), load_from=str(tmp_path / "weights.pth"),
                         default_hooks=dict(checkpoint=None), train_cfg=dict(by_epoch=True, max_epochs=1))
    loaded.register_hook(Look())
    loaded.train()
    assert Initialised.calls == 2  # called, as MMEngine does, then overwritten by load_from
    assert all(bool((p == 0.5).all()) for p in _hook(loaded, Look).values)
