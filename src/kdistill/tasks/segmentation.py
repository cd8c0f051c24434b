"""Semantic segmentation: images + int64 masks ``[N, H, W]`` (0 = background); a model outputs
logits ``[B, classes, H, W]`` at the input's resolution; metrics are pixel accuracy, the
intersection over union of each class and their mean (mIoU), as in PASCAL VOC and Liu et al.
(CVPR 2019), whose ``l_mc`` is the per-pixel cross-entropy ``F.cross_entropy`` computes on
these shapes (so plain training and the ``hard_targets`` term need nothing new).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.data import Batch, Split
from kdistill.errors import KDistillError
from kdistill.tasks.base import Evaluation, Meter, Task, register_task, run_on_example

__all__ = [
    "SegmentationEvaluation",
    "SegmentationTask",
    "evaluate_segmenter",
    "intersection_over_union",
    "predict_masks",
]


def intersection_over_union(confusion: torch.Tensor) -> list[float | None]:
    """IoU of each class from a pixel confusion matrix ``[true, predicted]``:
    ``TP / (TP + FP + FN)``; ``None`` for a class neither present nor predicted."""
    true_positive = confusion.diagonal().double()
    union = confusion.sum(dim=0).double() + confusion.sum(dim=1).double() - true_positive
    return [
        None if float(u) == 0 else float(tp / u) for tp, u in zip(true_positive, union, strict=True)
    ]


@dataclass
class SegmentationEvaluation(Evaluation):
    confusion: torch.Tensor  # [true, predicted] pixel counts
    loss: float

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def errors(self) -> int:
        return self.total - int(self.confusion.diagonal().sum())

    @property
    def per_class_iou(self) -> list[float | None]:
        return intersection_over_union(self.confusion)

    @property
    def miou(self) -> float:
        """Mean IoU over the classes present or predicted (background included)."""
        values = [value for value in self.per_class_iou if value is not None]
        return sum(values) / len(values) if values else 0.0

    def summary(self, with_details: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = {
            "miou": round(self.miou, 6),
            "pixel_accuracy": round(1 - self.errors / max(self.total, 1), 6),
            "errors": self.errors,
            "total": self.total,
            "loss": round(self.loss, 6),
            "per_class_iou": [None if v is None else round(v, 6) for v in self.per_class_iou],
        }
        if with_details:
            result["confusion"] = self.confusion.tolist()
        return result


@torch.no_grad()
def predict_masks(
    model: nn.Module, split: Split, batch_size: int = 500, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """The predicted class of every pixel, ``[N, H, W]`` int64 on the CPU."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(split), batch_size):
        chunk = split.inputs[start : start + batch_size].to(device)
        outputs.append(model(split.input_encoding.encode(chunk)).argmax(dim=1).cpu())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def evaluate_segmenter(
    model: nn.Module,
    split: Split,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    num_classes: int | None = None,
) -> SegmentationEvaluation:
    was_training = model.training
    model.eval()
    confusion: torch.Tensor | None = None
    loss_sum, pixels = 0.0, 0
    for start in range(0, len(split), batch_size):
        chunk = split.inputs[start : start + batch_size].to(device)
        masks = split.labels[start : start + batch_size].to(device)
        logits = model(split.input_encoding.encode(chunk)).float()
        classes = num_classes or logits.shape[1]
        loss_sum += float(F.cross_entropy(logits, masks, reduction="sum"))
        pixels += masks.numel()
        counts = torch.bincount(
            (masks * classes + logits.argmax(dim=1)).flatten(), minlength=classes * classes
        ).reshape(classes, classes)
        confusion = counts if confusion is None else confusion + counts
    model.train(was_training)
    assert confusion is not None, "evaluation of an empty split"
    return SegmentationEvaluation(confusion.cpu(), loss_sum / max(pixels, 1))


class _PixelErrorMeter(Meter):
    """Training pixel error of the logits an objective returns, summed on the device."""

    def __init__(self, device: torch.device) -> None:
        self.errors = torch.zeros((), dtype=torch.long, device=device)
        self.seen = 0

    def update(self, outputs: torch.Tensor, batch: Batch) -> None:
        self.errors += (outputs.detach().argmax(dim=1) != batch.labels).sum()
        self.seen += batch.labels.numel()

    def summary(self) -> dict[str, float]:
        return {"pixel_error_rate": int(self.errors) / max(self.seen, 1)}

    def reduce(self, total: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.errors = total(self.errors)
        self.seen = int(total(torch.tensor(self.seen)))


@register_task
class SegmentationTask(Task):
    name = "segmentation"

    def check_split(self, split: Split, max_shift: int) -> None:
        if max_shift:
            raise KDistillError(
                f"data.max_shift={max_shift} would move the images but not their masks: set "
                "data.max_shift: 0 for task: segmentation"
            )
        _check_masks(split)

    def meter(self, device: torch.device) -> Meter:
        return _PixelErrorMeter(device)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> SegmentationEvaluation:
        return evaluate_segmenter(model, split, min(batch_size, 500), device)

    def probe(self, model: nn.Module, split: Split, role: str) -> int:
        _check_masks(split)
        example = split.encoded(0, 1)
        outputs = run_on_example(model, example, role, "set model.kwargs (in_channels) to fit")
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 4:
            shape = list(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs)
            raise KDistillError(
                f"{role} ({type(model).__name__}) returned {shape} for one example; a "
                "segmentation model must return logits [batch, classes, H, W]"
            )
        if outputs.shape[-2:] != example.shape[-2:]:
            stride = example.shape[-1] / outputs.shape[-1]
            raise KDistillError(
                f"{role} ({type(model).__name__}) returns logits at {list(outputs.shape[-2:])} "
                f"for {list(example.shape[-2:])} inputs (output stride {stride:g}): upsample "
                "its logits to the input's size"
            )
        return int(outputs.shape[1])


def _check_masks(split: Split) -> None:
    if split.labels.dim() != 3 or split.labels.shape[1:] != split.inputs.shape[-2:]:
        raise KDistillError(
            f"task: segmentation needs masks [N, H, W] of the images' size, the data's labels "
            f"are {list(split.labels.shape)} for images {list(split.inputs.shape)}: use "
            "data.name canvases-seg or segmentation:FILE.npz"
        )
