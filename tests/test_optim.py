"""Optimizer wrappers: accumulation (MMEngine's scaling), clipping, lr access, AMP on CPU, state."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from support import ToyData, ToyNet
from torch import nn

from cockpit import AmpOptimWrapper, OptimWrapper

NO_IO = dict(checkpoint=None, logger=None)


def linear_model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(3, 1)


def batches(n: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 3, generator=generator), torch.randn(4, 1, generator=generator)) for _ in range(n)]


def loss_of(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return F.mse_loss(model(x), y)


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


def count_steps(optimizer: torch.optim.Optimizer) -> list[int]:
    """A list that grows by one at every ``optimizer.step()``."""
    steps: list[int] = []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    return steps


def reference_windows(model: nn.Module, data, windows: list[list[int]], divisors: list[int], lr: float,
                      momentum: float = 0.0) -> list[torch.Tensor]:
    """Plain torch: per window, backward the sum of the losses / divisor, then step once."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for window, divisor in zip(windows, divisors, strict=True):
        optimizer.zero_grad()
        total = sum(loss_of(model, data[i]) for i in window) / divisor
        total.backward()
        optimizer.step()
    return params(model)


# --- accumulation --------------------------------------------------------------------
def test_accumulation_equals_one_step_on_the_mean_loss():
    model = linear_model()
    reference = copy.deepcopy(model)
    data = batches(4)
    start = params(model)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=4)
    steps = count_steps(wrapper.optimizer)

    for i, batch in enumerate(data):
        wrapper.update_params(loss_of(model, batch))
        if i < 3:
            # Inside the window: gradients accumulate, the weights do not move.
            assert steps == []
            assert_same(params(model), start)
            assert all(p.grad is not None for p in model.parameters())
    assert len(steps) == 1
    # After the step the gradients are cleared.
    assert all(p.grad is None for p in model.parameters())
    assert_same(params(model), reference_windows(reference, data, [[0, 1, 2, 3]], [4], lr=0.1))


def test_accumulation_steps_every_n_calls_with_momentum():
    model = linear_model()
    reference = copy.deepcopy(model)
    data = batches(12)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), accumulative_counts=4)
    wrapper.initialize_count_status(0, 12)
    steps = count_steps(wrapper.optimizer)
    history = []
    for batch in data:
        wrapper.update_params(loss_of(model, batch))
        history.append(len(steps))
    assert history == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    windows = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert_same(params(model), reference_windows(reference, data, windows, [4, 4, 4], lr=0.05, momentum=0.9))


def test_last_incomplete_window_is_scaled_by_its_real_size():
    """max_counts=10, accumulative_counts=4: windows of 4, 4 and 2, the last divided by 2 (MMEngine)."""
    model = linear_model()
    reference = copy.deepcopy(model)
    data = batches(10)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=4)
    wrapper.initialize_count_status(0, 10)
    steps = count_steps(wrapper.optimizer)
    history = []
    for batch in data:
        wrapper.update_params(loss_of(model, batch))
        history.append(len(steps))
    assert history == [0, 0, 0, 1, 1, 1, 1, 2, 2, 3]
    windows = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert_same(params(model), reference_windows(reference, data, windows, [4, 4, 2], lr=0.1))


def test_scale_loss_factors():
    wrapper = OptimWrapper(torch.optim.SGD(linear_model().parameters(), lr=0.1), accumulative_counts=4)
    loss = torch.tensor(12.0)
    # Not initialised (max_counts=-1): always divided by accumulative_counts.
    assert float(wrapper.scale_loss(loss)) == 3.0
    wrapper.initialize_count_status(0, 10)
    factors = []
    for count in range(10):
        wrapper.count = count
        factors.append(float(loss / wrapper.scale_loss(loss)))
    assert factors == [4.0] * 8 + [2.0, 2.0]
    # A multiple of the window has no remainder window.
    wrapper.initialize_count_status(0, 8)
    wrapper.count = 7
    assert float(wrapper.scale_loss(loss)) == 3.0
    # accumulative_counts=1 leaves the loss alone.
    plain = OptimWrapper(torch.optim.SGD(linear_model().parameters(), lr=0.1))
    assert plain.scale_loss(loss) is loss


def test_run_shorter_than_one_window():
    model = linear_model()
    reference = copy.deepcopy(model)
    data = batches(3)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=4)
    wrapper.initialize_count_status(0, 3)
    steps = count_steps(wrapper.optimizer)
    for batch in data:
        wrapper.update_params(loss_of(model, batch))
    assert len(steps) == 1
    assert_same(params(model), reference_windows(reference, data, [[0, 1, 2]], [3], lr=0.1))


def test_resumed_count_continues_the_window():
    """Resumed at update 6 of 10: two more calls close the window of 4 (/4), then a window of 2 (/2)."""
    model = linear_model()
    reference = copy.deepcopy(model)
    data = batches(4)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=4)
    wrapper.initialize_count_status(6, 10)
    steps = count_steps(wrapper.optimizer)
    history = []
    for batch in data:
        wrapper.update_params(loss_of(model, batch))
        history.append(len(steps))
    assert history == [0, 1, 1, 2]
    assert_same(params(model), reference_windows(reference, data, [[0, 1], [2, 3]], [4, 2], lr=0.1))


def test_runner_accumulates_over_its_iterations(make_runner):
    """8 iterations with accumulative_counts=3: steps after iterations 3, 6 and 8 (the last, short window)."""
    runner = make_runner(default_hooks=NO_IO, val_dataloader=None, val_evaluator=None, val_cfg=None,
                         optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=3),
                         train_cfg=dict(by_epoch=True, max_epochs=1))
    steps = count_steps(runner.optim_wrapper.optimizer)
    seen = []

    from cockpit import Hook

    class Watch(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen.append(len(steps))

    runner.register_hook(Watch())
    runner.train()
    assert runner.optim_wrapper.max_counts == 8
    assert seen == [0, 0, 1, 1, 1, 2, 2, 3]


def test_bad_accumulative_counts():
    for bad in (0, -1, 2.0, "4"):
        with pytest.raises(ValueError):
            OptimWrapper(torch.optim.SGD(linear_model().parameters(), lr=0.1), accumulative_counts=bad)
    with pytest.raises(TypeError):
        OptimWrapper(linear_model())


# --- clipping ------------------------------------------------------------------------
def big_loss(model: nn.Module) -> torch.Tensor:
    x = torch.full((4, 3), 10.0)
    return (model(x) - 100.0).pow(2).mean()


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_clip_by_norm_matches_torch(norm_type):
    model = linear_model()
    reference = copy.deepcopy(model)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01),
                           clip_grad=dict(max_norm=0.5, norm_type=norm_type))
    wrapper.update_params(big_loss(model))

    optimizer = torch.optim.SGD(reference.parameters(), lr=0.01)
    big_loss(reference).backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm=0.5, norm_type=norm_type)
    optimizer.step()

    assert float(norm) > 0.5  # the clipping did bite
    assert wrapper.last_grad_norm == pytest.approx(float(norm))
    assert_same(params(model), params(reference))


def test_without_clipping_the_step_differs():
    model = linear_model()
    clipped = copy.deepcopy(model)
    OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01)).update_params(big_loss(model))
    wrapper = OptimWrapper(torch.optim.SGD(clipped.parameters(), lr=0.01), clip_grad=dict(max_norm=0.5))
    wrapper.update_params(big_loss(clipped))
    assert not torch.allclose(model.weight, clipped.weight)


def test_clip_by_value_matches_torch():
    model = linear_model()
    reference = copy.deepcopy(model)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01),
                           clip_grad=dict(type="value", clip_value=0.25))
    wrapper.update_params(big_loss(model))

    optimizer = torch.optim.SGD(reference.parameters(), lr=0.01)
    big_loss(reference).backward()
    assert max(float(p.grad.abs().max()) for p in reference.parameters()) > 0.25
    torch.nn.utils.clip_grad_value_(reference.parameters(), 0.25)
    optimizer.step()
    assert_same(params(model), params(reference))
    assert wrapper.last_grad_norm is None


def test_clipping_applies_to_the_accumulated_gradient():
    model = linear_model()
    reference = copy.deepcopy(model)
    data = batches(2)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2,
                           clip_grad=dict(max_norm=0.05))
    for batch in data:
        wrapper.update_params(loss_of(model, batch))

    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    ((loss_of(reference, data[0]) + loss_of(reference, data[1])) / 2).backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.05)
    optimizer.step()
    assert_same(params(model), params(reference))


@pytest.mark.parametrize(
    "clip",
    [dict(norm_type=2), dict(type="norm"), dict(type="value"), dict(type="value", max_norm=1.0),
     dict(type="percentile", max_norm=1.0)],
    ids=["no-max-norm", "norm-no-max-norm", "value-no-clip-value", "value-with-max-norm", "unknown-type"],
)
def test_bad_clip_config(clip):
    with pytest.raises(ValueError):
        OptimWrapper(torch.optim.SGD(linear_model().parameters(), lr=0.1), clip_grad=clip)


def test_clip_config_is_not_mutated():
    clip = dict(type="value", clip_value=0.5)
    wrapper = OptimWrapper(torch.optim.SGD(linear_model().parameters(), lr=0.1), clip_grad=clip)
    assert clip == dict(type="value", clip_value=0.5)
    assert wrapper.clip_grad == dict(type="value", clip_value=0.5)


# --- learning rate, momentum -------------------------------------------------------------
def test_get_lr_and_momentum_per_param_group():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    optimizer = torch.optim.SGD([
        {"params": model[0].parameters(), "lr": 0.1, "momentum": 0.9},
        {"params": model[1].parameters(), "lr": 0.01},
    ], lr=0.5, momentum=0.5)
    wrapper = OptimWrapper(optimizer)
    assert wrapper.get_lr() == {"lr": [0.1, 0.01]}
    assert wrapper.get_momentum() == {"momentum": [0.9, 0.5]}
    optimizer.param_groups[1]["lr"] = 0.02
    assert wrapper.get_lr() == {"lr": [0.1, 0.02]}
    assert all(isinstance(v, float) for v in wrapper.get_lr()["lr"])

    adam = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.99)))
    assert adam.get_lr() == {"lr": [1e-3]}
    assert adam.get_momentum() == {"momentum": [0.8]}


# --- AMP on CPU ----------------------------------------------------------------------
def test_amp_on_cpu_autocasts_to_bfloat16_and_trains():
    model = linear_model()
    start = params(model)
    wrapper = AmpOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    assert wrapper.device_type == "cpu"
    assert wrapper.dtype is torch.bfloat16
    a, b = torch.randn(4, 3), torch.randn(3, 2)
    assert (a @ b).dtype is torch.float32
    with wrapper.optim_context(model):
        assert (a @ b).dtype is torch.bfloat16
        loss = loss_of(model, batches(1)[0])
        assert model(a).dtype is torch.bfloat16
    assert (a @ b).dtype is torch.float32
    wrapper.update_params(loss)
    after = params(model)
    assert all(p.dtype is torch.float32 for p in after)
    assert any(not torch.equal(x, y) for x, y in zip(start, after, strict=True))
    assert all(torch.isfinite(p).all() for p in after)


def test_amp_rejects_unknown_dtype():
    with pytest.raises(ValueError):
        AmpOptimWrapper(torch.optim.SGD(linear_model().parameters(), lr=0.1), dtype="float32")


def test_amp_through_the_runner(make_runner):
    class DtypeNet(ToyNet):
        seen: list[torch.dtype] = []

        def forward(self, inputs, data_samples=None, mode="tensor"):
            logits = self.net(inputs)
            if mode == "loss":
                DtypeNet.seen.append(logits.dtype)
                return {"loss": F.cross_entropy(logits.float(), data_samples)}
            return super().forward(inputs, data_samples, mode)

    DtypeNet.seen = []
    runner = make_runner(default_hooks=NO_IO, model=dict(type=DtypeNet),
                         optim_wrapper=dict(type="AmpOptimWrapper", optimizer=dict(type="SGD", lr=0.1)),
                         train_dataloader=dict(dataset=dict(type=ToyData, size=16), batch_size=8),
                         train_cfg=dict(by_epoch=True, max_epochs=1))
    assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
    start = params(runner.model)
    runner.train()
    assert DtypeNet.seen == [torch.bfloat16, torch.bfloat16]
    assert any(not torch.equal(x, y) for x, y in zip(start, params(runner.model), strict=True))


# --- state ---------------------------------------------------------------------------
@pytest.mark.parametrize("wrapper_cls", [OptimWrapper, AmpOptimWrapper])
def test_state_dict_round_trip(wrapper_cls):
    model = linear_model()
    wrapper = wrapper_cls(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    data = batches(4)
    for batch in data[:2]:
        with wrapper.optim_context(model):
            loss = loss_of(model, batch)
        wrapper.update_params(loss)
    # Through bytes, as a checkpoint would (torch's state_dict holds the live buffers).
    buffer = io.BytesIO()
    torch.save(wrapper.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    keys = set(state)

    twin = copy.deepcopy(model)
    other = wrapper_cls(torch.optim.SGD(twin.parameters(), lr=0.5, momentum=0.9))
    other.load_state_dict(state)
    assert set(state) == keys  # loading does not consume the caller's dict
    assert other.get_lr() == {"lr": [0.1]}
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(wrapper.optimizer.state[p]["momentum_buffer"],
                                   other.optimizer.state[q]["momentum_buffer"])
    # Both continue identically (the momentum buffers came across).
    for batch in data[2:]:
        for m, w in ((model, wrapper), (twin, other)):
            with w.optim_context(m):
                loss = loss_of(m, batch)
            w.update_params(loss)
    assert_same(params(model), params(twin))
    if wrapper_cls is AmpOptimWrapper:
        assert "loss_scaler" in state


@pytest.mark.parametrize("on_nonfinite", ["skip", "stop"])
def test_a_fused_optimizer_skips_a_nonfinite_step_on_the_device(on_nonfinite):
    from cockpit.optim import NonFiniteLossError

    model = linear_model()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=True),
                           on_nonfinite=on_nonfinite)
    wrapper.update_params(loss_of(model, batches(1)[0]))
    before = copy.deepcopy(params(model))
    wrapper.update_params(loss_of(model, batches(1)[0]) * float("nan"))  # no sync: nothing raised yet
    assert_same(params(model), before)
    assert wrapper.skipped_steps == 0
    if on_nonfinite == "stop":
        with pytest.raises(NonFiniteLossError, match="at update 2"):
            wrapper.settle()
        return
    wrapper.settle()
    assert wrapper.skipped_steps == 1
    wrapper.update_params(loss_of(model, batches(1)[0]))
    assert not all(torch.equal(a, b) for a, b in zip(params(model), before, strict=True)), "training did not go on"
