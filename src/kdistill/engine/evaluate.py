"""Test-set evaluation: error count, accuracy, per-class errors and a confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.data import Split


@dataclass
class Evaluation:
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

    def summary(self, with_confusion: bool = False) -> dict:
        result = {
            "errors": self.errors,
            "total": self.total,
            "accuracy": round(self.accuracy, 6),
            "loss": round(self.loss, 6),
            "per_class_errors": self.per_class_errors,
        }
        if with_confusion:
            result["confusion"] = self.confusion.tolist()
        return result


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = 2000,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Logits for uint8 images ``[N, C, H, W]``, in large no-grad batches, on the CPU at the end."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size].to(device, non_blocking=True).float().div_(255.0)
        outputs.append(model(chunk).float().cpu())
    model.train(was_training)
    return torch.cat(outputs)


def evaluate_logits(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None
) -> Evaluation:
    num_classes = num_classes or logits.shape[1]
    predictions = logits.argmax(dim=1)
    confusion = torch.bincount(
        labels * num_classes + predictions, minlength=num_classes * num_classes
    )
    return Evaluation(
        errors=int((predictions != labels).sum()),
        total=len(labels),
        loss=float(F.cross_entropy(logits, labels)),
        confusion=confusion.reshape(num_classes, num_classes),
    )


def evaluate(
    model: nn.Module, split: Split, batch_size: int = 2000, device: str | torch.device = "cpu"
) -> Evaluation:
    return evaluate_logits(predict_logits(model, split.images, batch_size, device), split.labels)


def without_confusion(metrics: dict[str, dict]) -> dict[str, dict]:
    """Split name -> summary, minus the bulky confusion matrices (for compact JSON summaries)."""
    return {
        split: {key: value for key, value in values.items() if key != "confusion"}
        for split, values in metrics.items()
    }
