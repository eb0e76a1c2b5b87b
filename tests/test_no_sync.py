"""Between log points a training step makes no host-device synchronisation.

On a GPU every ``.item()``, ``.tolist()``, ``bool(tensor)`` or ``float(tensor)`` waits for the
device's queue to drain. A real run (default hooks: LoggerHook every 10 iterations writing JSON
lines and TensorBoard, CheckpointHook, the health guard) counts these calls in each training
iteration; only the iterations that log may make them. On this CPU-only machine the calls are
counted, not timed: each one would be a stall on a GPU.
"""

from __future__ import annotations

import collections
import json

import pytest
import torch
from support import tiny_cfg

from cockpit import Runner
from cockpit.loops import BaseTrainLoop

#: The Tensor methods that make the host wait for the device (``__int__``/``__index__`` too: an
#: int read from a tensor is a read all the same).
SYNCING = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__")
EPOCH_LENGTH, LOG_INTERVAL = 20, 10


@pytest.fixture
def syncs_per_iteration(monkeypatch):
    """``{iteration: {method: calls}}`` made inside each training iteration (its hooks and safe point)."""
    counts: dict[int, collections.Counter] = {}
    current: list[collections.Counter | None] = [None]

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            if current[0] is not None:
                current[0][name] += 1
            return original(self, *args, **kwargs)

        return wrapper

    for name in SYNCING:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    run_iter = BaseTrainLoop.run_iter

    def counted_iter(loop, batch_idx, data_batch):
        current[0] = counts.setdefault(loop.iter, collections.Counter())
        try:
            run_iter(loop, batch_idx, data_batch)
        finally:
            current[0] = None

    monkeypatch.setattr(BaseTrainLoop, "run_iter", counted_iter)
    return counts


def test_iterations_that_do_not_log_make_no_host_device_sync(tmp_path, syncs_per_iteration):
    cfg = tiny_cfg(tmp_path / "work",
                   train_dataloader=dict(dataset=dict(type="toys.ToyData", size=8 * EPOCH_LENGTH),
                                         sampler=dict(type="DefaultSampler", shuffle=True), batch_size=8),
                   # Fused optimizers skip a non-finite step on the device; others need the loss read.
                   optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9, fused=True),
                                      clip_grad=dict(max_norm=10.0)),
                   default_hooks=dict(logger=dict(type="LoggerHook", interval=LOG_INTERVAL,
                                                  backends=("json", "tensorboard"))))
    runner = Runner.from_cfg(cfg, log_to_console=False)
    runner.train()

    assert sorted(syncs_per_iteration) == list(range(2 * EPOCH_LENGTH))
    # The first iteration publishes its keys at once (the hub keeps MMEngine's key order).
    logging = {0} | {i for i in range(2 * EPOCH_LENGTH) if (i % EPOCH_LENGTH + 1) % LOG_INTERVAL == 0}
    syncing = {i: dict(c) for i, c in syncs_per_iteration.items() if i not in logging and sum(c.values())}
    assert not syncing, f"iterations that do not log read tensors: {syncing}"
    # ... and the values still reach the hub and the log, each at its own step.
    loss = runner.message_hub.get_scalar("train/loss")
    assert loss.count == 2 * EPOCH_LENGTH and loss.series()[0] == list(range(2 * EPOCH_LENGTH))
    assert runner.message_hub.get_scalar("train/grad_norm").count == 2 * EPOCH_LENGTH
    lines = [json.loads(line) for line in (runner.log_dir / "vis_data" / "scalars.json").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [10, 20, 30, 40]


def test_the_guard_still_pauses_at_the_step_of_a_nan_loss_read_late(tmp_path):
    from toys import ToyNet

    class NanNet(ToyNet):
        forwards = 0

        def forward(self, inputs, data_samples=None, mode="tensor"):
            out = super().forward(inputs, data_samples, mode)
            if mode == "loss":
                type(self).forwards += 1
                if type(self).forwards == 12:
                    out = {"loss": out["loss"] * float("nan")}
            return out

    cfg = tiny_cfg(tmp_path / "work", model=dict(type=NanNet), default_hooks=dict(logger=None),
                   optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, fused=True)))
    cfg["health_guard"] = dict(answer_timeout=0.5)
    runner = Runner.from_cfg(cfg, log_to_console=False)
    runner.train()
    # The values are read every 10 steps here (the guard's device_read_interval), yet the trip names
    # the step the NaN came from, and the fused step skipped it on the device.
    messages = [message for _, _, message in runner.message_hub.logs()]
    assert any("health guard tripped (nonfinite) at iter 12: the loss is nan" in m for m in messages), messages
    assert any("rolled back" in m for m in messages)
    assert runner.message_hub.status == "finished"
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
