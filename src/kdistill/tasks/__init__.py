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
from kdistill.tasks.generation import GenerationTask  # registers "generation"
from kdistill.tasks.language_modeling import LanguageModelingTask
from kdistill.tasks.segmentation import SegmentationEvaluation, SegmentationTask
from kdistill.tasks.text_classification import SentenceEmbeddingTask, TextClassificationTask

__all__ = [
    "BatchSource",
    "ClassEvaluation",
    "ClassificationTask",
    "DetectionEvaluation",
    "DetectionTask",
    "Evaluation",
    "GenerationTask",
    "LanguageModelingTask",
    "Meter",
    "SentenceEmbeddingTask",
    "Task",
    "TextClassificationTask",
    "create_task",
    "evaluate_classifier",
    "evaluate_logits",
    "predict_logits",
    "register_task",
    "SegmentationEvaluation",
    "SegmentationTask",
    "without_confusion",
]
