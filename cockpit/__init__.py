"""Cockpit: train PyTorch models from a Python config, and watch and steer the run.

The core is headless: importing ``cockpit`` loads no UI package. The views live
in ``cockpit.widgets`` and are imported only when used.

The public names below are loaded on first use (PEP 562): ``from cockpit import
Runner`` imports the runner (and torch) then, while ``import cockpit.cli`` or a
view that needs only the channel never pays for torch.
"""

from __future__ import annotations

import importlib as _importlib
from typing import Any

from cockpit.version import __version__ as __version__

#: Each public name and the module that defines it.
_EXPORTS = {
    "Accuracy": "cockpit.evaluator",
    "AmpOptimWrapper": "cockpit.optim",
    "Arg": "cockpit.commands",
    "BaseMetric": "cockpit.evaluator",
    "BaseModel": "cockpit.model",
    "CheckpointError": "cockpit.errors",
    "CheckpointHook": "cockpit.hooks.checkpoint",
    "Checkpointer": "cockpit.checkpointer",
    "Command": "cockpit.commands",
    "CommandRejected": "cockpit.commands",
    "Config": "cockpit.config",
    "ConfigDict": "cockpit.config",
    "ConfigError": "cockpit.errors",
    "DefaultSampler": "cockpit.data",
    "DistSamplerSeedHook": "cockpit.hooks.sampler_seed",
    "EpochBasedTrainLoop": "cockpit.loops",
    "Evaluator": "cockpit.evaluator",
    "Hook": "cockpit.hooks.base",
    "InfiniteSampler": "cockpit.data",
    "IterBasedTrainLoop": "cockpit.loops",
    "IterTimerHook": "cockpit.hooks.iter_timer",
    "LoggerHook": "cockpit.hooks.logger",
    "MessageHub": "cockpit.hub",
    "OptimWrapper": "cockpit.optim",
    "ParamScheduler": "cockpit.schedulers",
    "ParamSchedulerHook": "cockpit.hooks.param_scheduler",
    "Priority": "cockpit.priority",
    "RunContext": "cockpit.interface",
    "Runner": "cockpit.runner",
    "RuntimeInfoHook": "cockpit.hooks.runtime_info",
    "Status": "cockpit.events",
    "TestLoop": "cockpit.loops",
    "ValLoop": "cockpit.loops",
    "current_hub": "cockpit.hub",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use, and keep the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cockpit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})

