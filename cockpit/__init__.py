"""Cockpit: train PyTorch models from a Python config, and watch and steer the run.

The core is headless: importing ``cockpit`` loads no UI package. The views live
in ``cockpit.widgets`` and are imported only when used.
"""

from cockpit.config import Config, ConfigDict
from cockpit.data import DefaultSampler, InfiniteSampler
from cockpit.errors import CheckpointError, ConfigError
from cockpit.evaluator import Accuracy, BaseMetric, Evaluator
from cockpit.hooks.base import Hook
from cockpit.hooks.checkpoint import CheckpointHook
from cockpit.hooks.iter_timer import IterTimerHook
from cockpit.hooks.logger import LoggerHook
from cockpit.hooks.param_scheduler import ParamSchedulerHook
from cockpit.hooks.runtime_info import RuntimeInfoHook
from cockpit.hooks.sampler_seed import DistSamplerSeedHook
from cockpit.hub import MessageHub, current_hub
from cockpit.loops import EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop
from cockpit.model import BaseModel
from cockpit.optim import AmpOptimWrapper, OptimWrapper
from cockpit.priority import Priority
from cockpit.runner import Runner, __version__
from cockpit.schedulers import ParamScheduler

__all__ = [
    "Accuracy", "AmpOptimWrapper", "BaseMetric", "BaseModel", "CheckpointError", "CheckpointHook", "Config",
    "ConfigDict", "ConfigError", "DefaultSampler", "DistSamplerSeedHook", "EpochBasedTrainLoop", "Evaluator",
    "Hook", "InfiniteSampler", "IterBasedTrainLoop", "IterTimerHook", "LoggerHook", "MessageHub", "OptimWrapper",
    "ParamScheduler", "ParamSchedulerHook", "Priority", "Runner", "RuntimeInfoHook", "TestLoop", "ValLoop",
    "__version__", "current_hub",
]
