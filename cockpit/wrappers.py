"""``CockpitDDP``: torch's DistributedDataParallel with the runner's step methods.

The forward pass of a training step must go through the DDP module itself so its
gradient all-reduce fires; validation and test steps need no gradients and call
the wrapped model directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch.nn.parallel import DistributedDataParallel


class CockpitDDP(DistributedDataParallel):
    """DDP that understands ``train_step``/``val_step``/``test_step``."""

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, float]:
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, True)
            losses = self.run_forward(data, mode="loss")
        loss, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(loss, loss_value=log_vars["loss"])
        return log_vars

    def val_step(self, data: Any) -> Any:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> Any:
        return self.module.test_step(data)

    def run_forward(self, data: Any, mode: str) -> Any:
        if isinstance(data, Mapping):
            return self(**data, mode=mode)
        if isinstance(data, (list, tuple)):
            return self(*data, mode=mode)
        return self(data, mode=mode)
