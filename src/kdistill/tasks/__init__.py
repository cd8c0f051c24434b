"""Tasks: what a batch holds, what a model's output means and which metrics evaluation computes.

One engine loop serves every task; a task is a plug-in (``@register_task``).
"""

from kdistill.tasks.base import (
    BatchSource,
    Evaluation,
    Meter,
    Task,
    create_task,
    register_task,
)
from kdistill.tasks.classification import (
    ClassEvaluation,
    ClassificationTask,
    evaluate_classifier,
    evaluate_logits,
    predict_logits,
    without_confusion,
)
from kdistill.tasks.detection import DetectionEvaluation, DetectionTask
from kdistill.tasks.segmentation import SegmentationEvaluation, SegmentationTask

__all__ = [
    "BatchSource",
    "ClassEvaluation",
    "ClassificationTask",
    "DetectionEvaluation",
    "DetectionTask",
    "Evaluation",
    "Meter",
    "Task",
    "create_task",
    "evaluate_classifier",
    "evaluate_logits",
    "predict_logits",
    "register_task",
    "SegmentationEvaluation",
    "SegmentationTask",
    "without_confusion",
]
