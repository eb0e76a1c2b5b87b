"""``BaseModel``: MMEngine's model contract.

``forward(inputs, data_samples=None, mode='tensor')`` with three modes:
``'loss'`` returns a dict of losses, ``'predict'`` what the evaluator reads,
``'tensor'`` raw outputs. The runner calls ``train_step``/``val_step``/``test_step``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cockpit.dist import all_reduce_mean_, is_distributed

if TYPE_CHECKING:
    from cockpit.optim import OptimWrapper


def move_to(data: Any, device: torch.device) -> Any:
    """``data`` with every tensor in it moved to ``device``."""
    if isinstance(data, torch.Tensor):
        return data.to(device, non_blocking=True)
    if isinstance(data, Mapping):
        return {k: move_to(v, device) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(move_to(v, device) for v in data)
    return data


class BaseModel(nn.Module):
    """Base class of Cockpit models.

    Subclasses implement ``forward``. A batch that is a dict is passed as keyword
    arguments, a tuple or list positionally: a ``(images, labels)`` batch calls
    ``forward(images, labels, mode=...)``.
    """

    def forward(self, inputs: Any, data_samples: Any = None, mode: str = "tensor") -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(inputs, data_samples=None, mode='tensor')")

    def data_preprocessor(self, data: Any, training: bool = False) -> Any:
        """Prepare a batch for ``forward``: by default, move it to the model's device."""
        device = self.__dict__.get("_cockpit_device")
        if device is None:
            device = next(self.parameters()).device if any(True for _ in self.parameters()) else torch.device("cpu")
            self.__dict__["_cockpit_device"] = device
        return move_to(data, device) if device.type != "cpu" else data

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # .to(), .cuda(), .half()... may move the parameters: forget the cached device.
        self.__dict__.pop("_cockpit_device", None)
        return super()._apply(fn, *args, **kwargs)

    def train_step(self, data: Any, optim_wrapper: OptimWrapper) -> dict[str, torch.Tensor]:
        """Forward in ``'loss'`` mode, sum the losses, update the parameters.

        Returns:
            The logged values of the step: ``loss`` (the total) first, then every entry of
            the loss dict, as detached 0-d tensors (MMEngine's ``log_vars``).
        """
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self.run_forward(data, mode="loss")
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    @torch.no_grad()
    def val_step(self, data: Any) -> Any:
        """Forward in ``'predict'`` mode for the evaluator."""
        return self.run_forward(self.data_preprocessor(data, False), mode="predict")

    @torch.no_grad()
    def test_step(self, data: Any) -> Any:
        """Forward in ``'predict'`` mode for the evaluator."""
        return self.run_forward(self.data_preprocessor(data, False), mode="predict")

    def run_forward(self, data: Any, mode: str) -> Any:
        """Call ``self`` with ``data`` unpacked as the batch's shape says."""
        if isinstance(data, Mapping):
            return self(**data, mode=mode)
        if isinstance(data, (list, tuple)):
            return self(*data, mode=mode)
        return self(data, mode=mode)

    def parse_losses(self, losses: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sum the entries whose key contains ``'loss'``; log every entry (as detached 0-d tensors,
        like MMEngine's, so ``outputs['loss'].item()`` works in a hook).

        Raises:
            TypeError: when ``losses`` is not a dict of tensors (or lists of tensors).
        """
        if type(losses) is dict and len(losses) == 1:
            # The common case, a dict holding only the 0-d result of the loss: what the general
            # path below makes of it, without its loops.
            value = losses.get("loss")
            if type(value) is torch.Tensor and not value.is_leaf and value.dim() == 0:
                log_vars = {"loss": value.detach()}
                if not is_distributed():
                    return value, log_vars
        if not isinstance(losses, Mapping):
            raise TypeError(
                f"{type(self).__name__}.forward(mode='loss') must return a dict of losses, "
                f"got {type(losses).__name__}"
            )
        values: dict[str, torch.Tensor] = {}
        for key, value in losses.items():
            if isinstance(value, torch.Tensor):
                # A 0-d result of an operation (not a leaf: it has a grad_fn) is taken as it is;
                # anything else goes through mean(), which also makes a new tensor of a 0-d leaf: a
                # logged value must not alias a parameter (or buffer) that the optimizer step changes.
                values[key] = value if value.dim() == 0 and not value.is_leaf else value.mean()
            elif isinstance(value, Sequence) and all(isinstance(v, torch.Tensor) for v in value):
                values[key] = sum(v.mean() for v in value)
            else:
                raise TypeError(f"loss {key!r} must be a tensor or a list of tensors, got {type(value).__name__}")
        loss_terms = [v for k, v in values.items() if "loss" in k]
        if not loss_terms:
            raise ValueError(
                f"{type(self).__name__}.forward(mode='loss') returned {sorted(values)}, but no key contains 'loss'; "
                "name at least one entry like 'loss' or 'loss_cls'"
            )
        loss = sum(loss_terms) if len(loss_terms) > 1 else loss_terms[0]
        # "loss" is always the total, even when the model also returns an entry named "loss".
        log_vars = {"loss": loss.detach()}
        log_vars.update((k, v.detach()) for k, v in values.items() if k != "loss")
        # In a distributed run they are averaged over the ranks (one all-reduce for all of them),
        # so every rank logs what the whole batch did.
        if not is_distributed():
            return loss, log_vars
        flat = all_reduce_mean_(torch.stack([v.float() for v in log_vars.values()]))
        return loss, dict(zip(log_vars, flat.unbind(), strict=True))
