"""The training engine: one loop (trainer), objectives, optimizers, checkpoints, the device."""

from kdistill.engine.checkpoint import load_model, save_model
from kdistill.engine.device import resolve_device
from kdistill.engine.distributed import (
    Processes,
    is_main_process,
    processes,
    under_torchrun,
    wait_for_main,
)
from kdistill.engine.objective import Objective, ObjectiveOutput, SupervisedObjective
from kdistill.engine.trainer import FitResult, FitSettings, fit

__all__ = [
    "FitResult",
    "FitSettings",
    "Objective",
    "ObjectiveOutput",
    "Processes",
    "SupervisedObjective",
    "fit",
    "is_main_process",
    "load_model",
    "processes",
    "resolve_device",
    "save_model",
    "under_torchrun",
    "wait_for_main",
]
