"""Optimizer wrappers: gradient accumulation, clipping and mixed precision.

``OptimWrapper.update_params(loss)`` is the whole update: scale the loss for
accumulation, backward, and every ``accumulative_counts`` calls clip, step and
zero the gradients. The last, incomplete accumulation window of a run is scaled
by its real size, so every sample weighs the same (MMEngine's semantics).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

#: Device-side skip flags kept at most before the wrapper reads them itself.
_MAX_UNREAD = 100
#: What ``optim_context`` returns when there is nothing to do: ``nullcontext`` keeps no state, so
#: one instance serves every step (and nested or concurrent uses).
_NO_CONTEXT = contextlib.nullcontext()


class NonFiniteLossError(FloatingPointError):
    """The loss was NaN or infinite and the optimizer wrapper was told to stop."""


class OptimWrapper:
    """Wraps an optimizer with accumulation and clipping.

    Args:
        optimizer: the torch optimizer.
        accumulative_counts: how many ``update_params`` calls add up to one step.
        clip_grad: ``dict(max_norm=1.0, norm_type=2)`` clips by norm,
            ``dict(type='value', clip_value=0.5)`` by value; None for no clipping.
        on_nonfinite: what a NaN or infinite loss does: ``'stop'`` raises
            ``NonFiniteLossError`` before it reaches the weights (the last checkpoint stays the
            last good one); ``'skip'`` drops the step, logs it, and trains on.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, accumulative_counts: int = 1,
                 clip_grad: dict | None = None, on_nonfinite: str = "stop") -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not isinstance(accumulative_counts, int) or accumulative_counts < 1:
            raise ValueError(f"accumulative_counts must be an int >= 1, got {accumulative_counts!r}")
        self.optimizer = optimizer
        self.accumulative_counts = accumulative_counts
        self.clip_grad = self._check_clip(dict(clip_grad) if clip_grad else None)
        if on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"on_nonfinite must be 'stop' or 'skip', got {on_nonfinite!r}")
        self.on_nonfinite = on_nonfinite
        self.skipped_steps = 0
        self.count = 0
        self.max_counts = -1
        # The gradient norm of the last clipped step, as a tensor (reading it would stall a GPU).
        self.last_grad_norm: torch.Tensor | None = None
        # Device-side "this update's loss was not finite" flags, not read yet (see ``settle``).
        self._unread_flags: list[torch.Tensor] = []

    @staticmethod
    def _check_clip(clip: dict | None) -> dict | None:
        if clip is None:
            return None
        kind = clip.pop("type", "norm")
        if kind == "norm":
            if "max_norm" not in clip:
                raise ValueError("clip_grad by norm needs max_norm, e.g. clip_grad=dict(max_norm=1.0)")
        elif kind == "value":
            if "clip_value" not in clip:
                raise ValueError("clip_grad=dict(type='value') needs clip_value, e.g. clip_value=0.5")
        else:
            raise ValueError(f"clip_grad type must be 'norm' or 'value', got {kind!r}")
        clip["type"] = kind
        return clip

    # --- the update ---------------------------------------------------------
    def initialize_count_status(self, count: int, max_counts: int) -> None:
        """Tell the wrapper where the run is (so resumes and the last window accumulate right)."""
        self.count = count
        self.max_counts = max_counts

    def update_params(self, loss: torch.Tensor, loss_value: float | None = None) -> None:
        """Backward ``loss`` and step when an accumulation window is complete.

        A non-finite loss never reaches the weights. An optimizer that can skip a step on the device
        (PyTorch's fused ones: ``fused=True``) is handed a device-side flag and skips it there, with no
        host-device sync; the flag is read later, with the logged values (``settle``). Any other
        optimizer needs the answer before it steps, so the loss is read here (one sync per update).

        Args:
            loss: the loss to minimise.
            loss_value: its value as a float, when the caller already has it (saves a sync).

        Raises:
            NonFiniteLossError: the loss is NaN or infinite and ``on_nonfinite='stop'``.
        """
        if loss_value is None and self._skips_on_device():
            self._update_skipping_on_device(loss)
            return
        if loss_value is None:
            # One read of the value: ``item()`` on a 0-d loss is the one sync, and costs well under a
            # microsecond on the CPU where ``isfinite(...).all()`` runs two ops first (~13 us).
            finite = (math.isfinite(loss.item()) if loss.numel() == 1
                      else bool(torch.isfinite(loss.detach()).all()))
        else:
            finite = math.isfinite(loss_value)
        if not finite:
            if self.on_nonfinite == "stop":
                raise self._nonfinite_error(float(loss.detach().float().mean()), self.count + 1)
            self.skipped_steps += 1
            self.zero_grad()
            self.count += 1
            return
        self.backward(self.scale_loss(loss))
        self.count += 1
        if self.should_update():
            self.step()
            self.zero_grad()

    def _skips_on_device(self) -> bool:
        """Whether the optimizer takes a device-side skip flag (``found_inf``) and each update is one call."""
        return self.accumulative_counts == 1 and getattr(self.optimizer, "_step_supports_amp_scaling", False)

    def _update_skipping_on_device(self, loss: torch.Tensor) -> None:
        nonfinite = torch.isfinite(loss.detach()).all().logical_not()
        self.backward(self.scale_loss(loss))
        self.count += 1
        self.optimizer.found_inf = nonfinite.float()  # the fused kernels leave everything as it was
        try:
            self.step()
        finally:
            del self.optimizer.found_inf
        self.zero_grad()
        self._unread_flags.append(nonfinite)
        if len(self._unread_flags) >= _MAX_UNREAD:
            self.settle()  # nobody read them (no RuntimeInfoHook): a bounded delay all the same

    def settle(self) -> None:
        """Read the device-side skip flags kept since the last call (one sync for all of them).

        Raises:
            NonFiniteLossError: a skipped loss was non-finite and ``on_nonfinite='stop'``.
        """
        if not self._unread_flags:
            return
        flags, self._unread_flags = self._unread_flags, []
        read = torch.stack(flags).tolist()
        skipped = sum(read)
        if skipped and self.on_nonfinite == "stop":
            update = self.count - len(read) + read.index(True) + 1
            raise self._nonfinite_error(float("nan"), update)
        self.skipped_steps += skipped

    @staticmethod
    def _nonfinite_error(value: float, update: int) -> NonFiniteLossError:
        return NonFiniteLossError(
            f"the loss is {value} at update {update}; training stopped before it reached the weights, so the "
            "last checkpoint is the last good state. Lower the learning rate, add clip_grad, or set "
            "optim_wrapper.on_nonfinite='skip' to drop such steps"
        )

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        if self.accumulative_counts == 1:
            return loss
        remainder_start = self.max_counts - self.max_counts % self.accumulative_counts if self.max_counts > 0 else -1
        if 0 <= remainder_start <= self.count and self.max_counts % self.accumulative_counts:
            return loss / (self.max_counts % self.accumulative_counts)
        return loss / self.accumulative_counts

    def should_update(self) -> bool:
        return self.count % self.accumulative_counts == 0 or self.count == self.max_counts

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> None:
        if self.clip_grad is not None:
            self._clip()
        self.optimizer.step()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]

    def _clip(self) -> None:
        params = self._params()
        if not params:
            return
        if self.clip_grad["type"] == "value":
            nn.utils.clip_grad_value_(params, self.clip_grad["clip_value"])
        else:
            options = {k: v for k, v in self.clip_grad.items() if k != "type"}
            self.last_grad_norm = nn.utils.clip_grad_norm_(params, **options)

    def optim_context(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """The context of a forward pass: skips DDP's gradient sync inside an accumulation window."""
        if self.accumulative_counts > 1:
            no_sync = getattr(model, "no_sync", None)
            if no_sync is not None and not self._next_updates():
                return no_sync()
        return _NO_CONTEXT

    def _next_updates(self) -> bool:
        return (self.count + 1) % self.accumulative_counts == 0 or self.count + 1 == self.max_counts

    # --- learning rate and state ---------------------------------------------
    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def get_lr(self) -> dict[str, list[float]]:
        """``{'lr': [lr of each param group]}`` (MMEngine's shape)."""
        return {"lr": [float(group["lr"]) for group in self.optimizer.param_groups]}

    def get_momentum(self) -> dict[str, list[float]]:
        momentum = []
        for group in self.optimizer.param_groups:
            if "momentum" in group:
                momentum.append(float(group["momentum"]))
            elif "betas" in group:
                momentum.append(float(group["betas"][0]))
            else:
                momentum.append(0.0)
        return {"momentum": momentum}

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({type(self.optimizer).__name__}, "
                f"accumulative_counts={self.accumulative_counts}, clip_grad={self.clip_grad})")


class AmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` with automatic mixed precision.

    On CUDA it autocasts to ``dtype`` (float16 by default) and scales the loss with a
    ``GradScaler``; on CPU it autocasts to bfloat16, which needs no scaling.

    Args:
        dtype: ``'float16'`` or ``'bfloat16'``; None picks per device.
        loss_scale: ``'dynamic'`` or a fixed float (CUDA float16 only).
        **kwargs: as ``OptimWrapper``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, dtype: str | None = None,
                 loss_scale: str | float = "dynamic", **kwargs: Any) -> None:
        super().__init__(optimizer, **kwargs)
        if dtype not in (None, "float16", "bfloat16"):
            raise ValueError(f"AmpOptimWrapper dtype must be 'float16' or 'bfloat16', got {dtype!r}")
        device = self._device()
        self.device_type = device.type
        if dtype is None:
            dtype = "float16" if device.type == "cuda" else "bfloat16"
        self.dtype = getattr(torch, dtype)
        use_scaler = self.dtype is torch.float16
        if loss_scale == "dynamic":
            self.scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
        else:
            self.scaler = torch.amp.GradScaler(device.type, init_scale=float(loss_scale), growth_factor=1.0,
                                               backoff_factor=1.0, growth_interval=2**31 - 1, enabled=use_scaler)

    def _device(self) -> torch.device:
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                return p.device
        return torch.device("cpu")

    def _skips_on_device(self) -> bool:
        return False  # the GradScaler hands the optimizer its own found_inf flag

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self) -> None:
        if self.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            self._clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def state_dict(self) -> dict[str, Any]:
        state = dict(self.optimizer.state_dict())
        state["loss_scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        scaler = state.pop("loss_scaler", None)
        if scaler:
            self.scaler.load_state_dict(scaler)
        self.optimizer.load_state_dict(state)
