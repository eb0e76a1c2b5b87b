"""Cockpit: train PyTorch models from a Python config, and watch and steer the run.

The core is headless: importing ``cockpit`` loads no UI package. The views live
in ``cockpit.widgets`` and are imported only when used.
"""

from cockpit.checkpointer import Checkpointer
from cockpit.commands import Arg, Command, CommandRejected
from cockpit.config import Config, ConfigDict
from cockpit.data import DefaultSampler, InfiniteSampler
from cockpit.errors import CheckpointError, ConfigError
from cockpit.evaluator import Accuracy, BaseMetric, Evaluator
from cockpit.events import Status
from cockpit.hooks.base import Hook
from cockpit.hooks.checkpoint import CheckpointHook
from cockpit.hooks.iter_timer import IterTimerHook
from cockpit.hooks.logger import LoggerHook
from cockpit.hooks.param_scheduler import ParamSchedulerHook
from cockpit.hooks.runtime_info import RuntimeInfoHook
from cockpit.hooks.sampler_seed import DistSamplerSeedHook
from cockpit.hub import MessageHub, current_hub
from cockpit.interface import RunContext
from cockpit.loops import EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop
from cockpit.model import BaseModel
from cockpit.optim import AmpOptimWrapper, OptimWrapper
from cockpit.priority import Priority
from cockpit.runner import Runner
from cockpit.schedulers import ParamScheduler
from cockpit.version import __version__

__all__ = [
    "Accuracy", "AmpOptimWrapper", "Arg", "BaseMetric", "BaseModel", "CheckpointError", "CheckpointHook",
    "Checkpointer", "Command", "CommandRejected", "Config",
    "ConfigDict", "ConfigError", "DefaultSampler", "DistSamplerSeedHook", "EpochBasedTrainLoop", "Evaluator",
    "Hook", "InfiniteSampler", "IterBasedTrainLoop", "IterTimerHook", "LoggerHook", "MessageHub", "OptimWrapper",
    "ParamScheduler", "ParamSchedulerHook", "Priority", "RunContext", "Runner", "RuntimeInfoHook", "Status",
    "TestLoop", "ValLoop",
    "__version__", "current_hub",
]
