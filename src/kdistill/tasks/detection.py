"""Object detection: images + boxes ``[N, K, 5]`` (class, x0, y0, x1, y1; class -1 pads); a
grid detector outputs ``[B, classes + 5, H/4, W/4]`` (:mod:`kdistill.losses.detection`);
metrics are COCO's mAP@0.5 and mAP@[.5:.95], computed by pycocotools' ``COCOeval``.

Detections are decoded without NMS, as CenterNet does (Zhou et al. 2019): a cell is a detection
of class c when its probability of c is the largest in its 3 x 3 neighbourhood and above
``min_score``; its box is the cell centre plus the predicted distances.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.data import Batch, Split
from kdistill.errors import KDistillError
from kdistill.losses.detection import detection_loss, grid_targets, split_outputs
from kdistill.tasks.base import Evaluation, Meter, Task, register_task, run_on_example

__all__ = ["DetectionEvaluation", "DetectionTask", "coco_map", "decode_detections"]

STRIDE = 4
MIN_SCORE = 0.05
MAX_DETECTIONS = 20


def decode_detections(
    outputs: torch.Tensor, stride: int = STRIDE, min_score: float = MIN_SCORE
) -> list[torch.Tensor]:
    """Per image, detections ``[D, 6]`` rows ``(class, score, x0, y0, x1, y1)``, best first."""
    logits, offsets = split_outputs(outputs)
    scores = F.softmax(logits, dim=1)[:, 1:]  # object classes only
    peaks = scores == F.max_pool2d(scores, 3, stride=1, padding=1)
    rows, cols = scores.shape[-2:]
    centre_y = ((torch.arange(rows, device=outputs.device) + 0.5) * stride)[:, None]
    centre_x = ((torch.arange(cols, device=outputs.device) + 0.5) * stride)[None, :]
    distances = offsets.exp() * stride  # left, top, right, bottom
    corners = torch.stack(
        [
            centre_x - distances[:, 0],
            centre_y - distances[:, 1],
            centre_x + distances[:, 2],
            centre_y + distances[:, 3],
        ],
        dim=1,
    )  # [B, 4, G, G]
    found = []
    for image in range(outputs.shape[0]):
        keep = peaks[image] & (scores[image] > min_score)
        labels, ys, xs = keep.nonzero(as_tuple=True)
        values = scores[image, labels, ys, xs]
        boxes = corners[image, :, ys, xs].T
        rows_found = torch.cat([labels[:, None].float(), values[:, None], boxes], dim=1)
        order = values.argsort(descending=True)[:MAX_DETECTIONS]
        found.append(rows_found[order].cpu())
    return found


def coco_map(
    boxes: torch.Tensor, detections: list[torch.Tensor], num_classes: int
) -> dict[str, float]:
    """mAP@[.5:.95] and mAP@0.5 of ``detections`` against ``boxes`` ``[N, K, 5]``, by
    pycocotools (boxes as COCO ``[x, y, width, height]`` in pixels, all areas)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise KDistillError(
            "detection metrics need pycocotools: pip install 'kdistill[dense]'"
        ) from None
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for index in range(boxes.shape[0]):
        images.append({"id": index + 1})
        for label, x0, y0, x1, y1 in boxes[index].tolist():
            if label < 0:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": int(label) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float((x1 - x0) * (y1 - y0)),
                    "iscrowd": 0,
                }
            )
        for label, score, x0, y0, x1, y1 in detections[index].tolist():
            results.append(
                {
                    "image_id": index + 1,
                    "category_id": int(label) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": score,
                }
            )
    truth = COCO()
    truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c + 1} for c in range(num_classes)],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth.createIndex()
        if not results:
            return {"map": 0.0, "map_50": 0.0}
        found = truth.loadRes(results)
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {
        "map": max(float(evaluation.stats[0]), 0.0),
        "map_50": max(float(evaluation.stats[1]), 0.0),
    }


@dataclass
class DetectionEvaluation(Evaluation):
    map: float
    map_50: float
    loss: float
    images: int
    detections: int

    def summary(self, with_details: bool = False) -> dict[str, Any]:
        return {
            "map": round(self.map, 6),
            "map_50": round(self.map_50, 6),
            "loss": round(self.loss, 6),
            "images": self.images,
            "detections": self.detections,
        }


@torch.no_grad()
def evaluate_detector(
    model: nn.Module, split: Split, batch_size: int = 500, device: str | torch.device = "cpu"
) -> DetectionEvaluation:
    was_training = model.training
    model.eval()
    detections: list[torch.Tensor] = []
    loss_sum = 0.0
    classes = 0
    for start in range(0, len(split), batch_size):
        chunk = split.inputs[start : start + batch_size].to(device)
        boxes = split.labels[start : start + batch_size].to(device)
        outputs = model(split.input_encoding.encode(chunk)).float()
        classes = outputs.shape[1] - 5
        loss_sum += float(detection_loss(outputs, boxes, STRIDE)) * len(chunk)
        detections += decode_detections(outputs)
    model.train(was_training)
    scores = coco_map(split.labels, detections, classes)
    return DetectionEvaluation(
        scores["map"], scores["map_50"], loss_sum / max(len(split), 1), len(split),
        sum(len(found) for found in detections),
    )  # fmt: skip


class _CellErrorMeter(Meter):
    """Training error of the cells' classes (background included), summed on the device."""

    def __init__(self, device: torch.device) -> None:
        self.errors = torch.zeros((), dtype=torch.long, device=device)
        self.seen = 0

    def update(self, outputs: torch.Tensor, batch: Batch) -> None:
        logits, _ = split_outputs(outputs.detach())
        classes, _ = grid_targets(batch.labels, tuple(logits.shape[-2:]), STRIDE)
        self.errors += (logits.argmax(dim=1) != classes).sum()
        self.seen += classes.numel()

    def summary(self) -> dict[str, float]:
        return {"cell_error_rate": int(self.errors) / max(self.seen, 1)}

    def reduce(self, total: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.errors = total(self.errors)
        self.seen = int(total(torch.tensor(self.seen)))


def _check_boxes(split: Split) -> None:
    if split.labels.dim() != 3 or split.labels.shape[2] != 5:
        raise KDistillError(
            f"task: detection needs boxes [N, K, 5] (class, x0, y0, x1, y1), the data's labels "
            f"are {list(split.labels.shape)}: use data.name canvases-det or detection:FILE.npz"
        )


@register_task
class DetectionTask(Task):
    name = "detection"

    def supervised_loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return detection_loss(outputs, labels, STRIDE)

    def check_split(self, split: Split, max_shift: int) -> None:
        if max_shift:
            raise KDistillError(
                f"data.max_shift={max_shift} would move the images but not their boxes: set "
                "data.max_shift: 0 for task: detection"
            )
        _check_boxes(split)

    def meter(self, device: torch.device) -> Meter:
        return _CellErrorMeter(device)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> DetectionEvaluation:
        return evaluate_detector(model, split, min(batch_size, 500), device)

    def probe(self, model: nn.Module, split: Split, role: str) -> int:
        _check_boxes(split)
        example = split.encoded(0, 1)
        outputs = run_on_example(model, example, role, "set model.kwargs (in_channels) to fit")
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 4 or outputs.shape[1] < 6:
            shape = list(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs)
            raise KDistillError(
                f"{role} ({type(model).__name__}) returned {shape} for one example; a detector "
                "must return [batch, classes + 1 + 4, H/4, W/4] (see kdistill.losses.detection)"
            )
        expected = [size // STRIDE for size in example.shape[-2:]]
        if list(outputs.shape[-2:]) != expected:
            stride = example.shape[-1] / outputs.shape[-1]
            raise KDistillError(
                f"{role} ({type(model).__name__}) outputs a {list(outputs.shape[-2:])} grid for "
                f"{list(example.shape[-2:])} inputs (output stride {stride:g}); detection "
                f"needs output stride {STRIDE} ({expected} cells)"
            )
        return int(outputs.shape[1]) - 5
