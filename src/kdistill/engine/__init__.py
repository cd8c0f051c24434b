"""The training engine: one loop (trainer), objectives, optimizers, checkpoints, the device."""

from kdistill.engine.checkpoint import load_model, save_model
from kdistill.engine.device import resolve_device
from kdistill.engine.objective import Objective, ObjectiveOutput, SupervisedObjective
from kdistill.engine.trainer import FitResult, FitSettings, fit

__all__ = [
    "FitResult",
    "FitSettings",
    "Objective",
    "ObjectiveOutput",
    "SupervisedObjective",
    "fit",
    "load_model",
    "resolve_device",
    "save_model",
]
