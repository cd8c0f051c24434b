"""Classification: inputs + integer labels; a model outputs logits ``[B, classes]``; metrics
are errors, accuracy, loss, per-class errors and the confusion matrix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.data import Batch, Split, shift_images
from kdistill.errors import KDistillError
from kdistill.tasks.base import Evaluation, Meter, Task, register_task, run_on_example

__all__ = [
    "ClassEvaluation",
    "ClassificationTask",
    "evaluate_classifier",
    "evaluate_logits",
    "predict_logits",
    "without_confusion",
]


@dataclass
class ClassEvaluation(Evaluation):
    errors: int
    total: int
    loss: float
    confusion: torch.Tensor  # [true, predicted]

    @property
    def accuracy(self) -> float:
        return 1.0 - self.errors / self.total

    @property
    def per_class_errors(self) -> list[int]:
        return (self.confusion.sum(dim=1) - self.confusion.diagonal()).tolist()

    def summary(self, with_details: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = {
            "errors": self.errors,
            "total": self.total,
            "accuracy": round(self.accuracy, 6),
            "loss": round(self.loss, 6),
            "per_class_errors": self.per_class_errors,
        }
        if with_details:
            result["confusion"] = self.confusion.tolist()
        return result


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    split: Split,
    batch_size: int = 2000,
    device: str | torch.device = "cpu",
    shift: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """Logits of ``model`` for every example of ``split`` (encoded as the split says), in
    large no-grad batches, on the CPU at the end. ``shift = (dx, dy)`` first translates every
    image as the training jitter does (before normalisation, vacated pixels black)."""
    was_training = model.training
    model.eval()
    outputs = []
    encoding = split.input_encoding
    for start in range(0, len(split), batch_size):
        chunk = split.inputs[start : start + batch_size].to(device, non_blocking=True)
        values = encoding.scale(chunk)
        if shift != (0, 0):
            count = len(values)
            values = shift_images(
                values,
                torch.full((count,), shift[0], dtype=torch.long),
                torch.full((count,), shift[1], dtype=torch.long),
            )
        outputs.append(model(encoding.finish(values)).float().cpu())
    model.train(was_training)
    if not outputs:
        return torch.empty(0)
    return torch.cat(outputs)


def evaluate_logits(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None
) -> ClassEvaluation:
    num_classes = num_classes or logits.shape[1]
    predictions = logits.argmax(dim=1)
    confusion = torch.bincount(
        labels * num_classes + predictions, minlength=num_classes * num_classes
    )
    return ClassEvaluation(
        errors=int((predictions != labels).sum()),
        total=len(labels),
        loss=float(F.cross_entropy(logits, labels)),
        confusion=confusion.reshape(num_classes, num_classes),
    )


def evaluate_classifier(
    model: nn.Module, split: Split, batch_size: int = 2000, device: str | torch.device = "cpu"
) -> ClassEvaluation:
    return evaluate_logits(predict_logits(model, split, batch_size, device), split.labels)


def without_confusion(metrics: dict[str, dict]) -> dict[str, dict]:
    """Split name -> summary, minus the bulky confusion matrices (for compact JSON summaries)."""
    return {
        split: {key: value for key, value in values.items() if key != "confusion"}
        for split, values in metrics.items()
    }


class _ErrorMeter(Meter):
    """Training error of the logits an objective returns, summed on the device."""

    def __init__(self, device: torch.device) -> None:
        self.errors = torch.zeros((), dtype=torch.long, device=device)
        self.seen = 0

    def update(self, outputs: torch.Tensor, batch: Batch) -> None:
        self.errors += (outputs.detach().argmax(dim=1) != batch.labels).sum()
        self.seen += len(batch.labels)

    def summary(self) -> dict[str, float]:
        return {"error_rate": int(self.errors) / max(self.seen, 1)}

    def reduce(self, total: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.errors = total(self.errors)
        self.seen = int(total(torch.tensor(self.seen)))


@register_task
class ClassificationTask(Task):
    name = "classification"

    def meter(self, device: torch.device) -> Meter:
        return _ErrorMeter(device)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> ClassEvaluation:
        return evaluate_classifier(model, split, batch_size, device)

    def probe(self, model: nn.Module, split: Split, role: str) -> int:
        if split.labels.dim() != 1:  # Split also holds dense labels (masks, boxes)
            raise KDistillError(
                f"task: classification needs one class id per example (labels [N]), the data's "
                f"labels are {list(split.labels.shape)}: set task: segmentation or detection, "
                "or give class ids (not one-hot)"
            )
        example = split.encoded(0, 1)
        hint = (
            "set data.input_shape=[-1] for flat input"
            if example.dim() > 2
            else "set data.input_shape (e.g. [1, 28, 28]) to the shape it expects"
        )
        outputs = run_on_example(model, example, role, hint)
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2:
            shape = list(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs)
            raise KDistillError(
                f"{role} ({type(model).__name__}) returned {shape} for one example; a classifier "
                "must return logits [batch, classes]"
            )
        return int(outputs.shape[-1])
