"""The training engine: one loop (trainer), objectives, evaluation, optimizers, checkpoints."""

from kdistill.engine.checkpoint import load_model, save_model
from kdistill.engine.evaluate import Evaluation, evaluate, evaluate_logits, predict_logits
from kdistill.engine.objective import Objective, ObjectiveOutput, SupervisedObjective
from kdistill.engine.trainer import FitResult, fit, resolve_device

__all__ = [
    "Evaluation",
    "FitResult",
    "Objective",
    "ObjectiveOutput",
    "SupervisedObjective",
    "evaluate",
    "evaluate_logits",
    "fit",
    "load_model",
    "predict_logits",
    "resolve_device",
    "save_model",
]
