"""Loss terms for a one-stage grid detector, and the detector's training targets.

The detector (:class:`kdistill.models.dense.GridDetector`) predicts, at every cell of a
stride-``s`` grid, ``classes + 1`` logits (index 0 = background) and 4 box offsets: the log
distances ``log(d / s)`` from the cell's centre to the box's left, top, right and bottom sides
(FCOS, Tian et al. 2019, with centre sampling: the cells within one cell of an object's centre
whose centre lies inside its box are positive).

Distillation terms from G. Chen, W. Choi, X. Yu, T. Han, M. Chandraker, "Learning Efficient
Object Detection Models with Knowledge Distillation", NeurIPS 2017, section 3:

* eq. 2, ``L_soft(P_s, P_t) = - sum_c w_c P_t log P_s`` with ``w_0 = 1.5`` for the background
  class and 1 for the others (``detection_soft_targets``);
* eq. 3-4, the teacher-bounded regression loss ``L_b = ||R_s - y||^2`` if
  ``||R_s - y||^2 + m > ||R_t - y||^2`` else 0 (``bounded_regression``);
* eq. 5, hint learning through an adaptation layer, is the ``fitnet`` term with its 1 x 1
  convolution (always built, even when the channel counts match).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm, TermContext, register_term

__all__ = [
    "BOX_CHANNELS",
    "BoundedRegression",
    "DetectionLoss",
    "DetectionSoftTargets",
    "bound_switched_on",
    "bounded_regression_loss",
    "box_errors",
    "detection_loss",
    "grid_targets",
    "split_outputs",
    "weighted_soft_targets",
]

BOX_CHANNELS = 4


def split_outputs(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, classes + 1 + 4, G, G]`` -> class logits ``[B, classes + 1, G, G]`` and box
    offsets ``[B, 4, G, G]``."""
    if outputs.dim() != 4 or outputs.shape[1] < BOX_CHANNELS + 2:
        raise KDistillError(
            f"a grid detector returns [batch, classes + 1 + 4, G, G], got {list(outputs.shape)}"
        )
    return outputs[:, :-BOX_CHANNELS], outputs[:, -BOX_CHANNELS:]


def grid_targets(
    boxes: torch.Tensor, grid: Sequence[int], stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training targets of boxes ``[B, K, 5]`` (class, x0, y0, x1, y1; class -1 pads) on a
    ``grid`` of cells ``stride`` pixels wide: classes ``[B, G, G]`` (0 = background, class + 1
    on positive cells) and box offsets ``[B, 4, G, G]`` (log distances / stride; 0 elsewhere).
    Where positives of two objects meet, the smaller object (listed later when equal) wins."""
    batch = boxes.shape[0]
    rows, cols = grid
    classes = torch.zeros(batch, rows, cols, dtype=torch.long, device=boxes.device)
    offsets = torch.zeros(batch, BOX_CHANNELS, rows, cols, device=boxes.device)
    centres_y = (torch.arange(rows, device=boxes.device) + 0.5) * stride
    centres_x = (torch.arange(cols, device=boxes.device) + 0.5) * stride
    real = boxes[..., 0] >= 0
    area = ((boxes[..., 3] - boxes[..., 1]) * (boxes[..., 4] - boxes[..., 2])).masked_fill(~real, 0)
    order = torch.argsort(area, dim=1, descending=True, stable=True)  # paint large first
    for image in range(batch):
        for slot in order[image].tolist():
            if not bool(real[image, slot]):
                continue
            label, x0, y0, x1, y1 = boxes[image, slot].tolist()
            row = min(int((y0 + y1) / 2 // stride), rows - 1)
            col = min(int((x0 + x1) / 2 // stride), cols - 1)
            top, left = max(row - 1, 0), max(col - 1, 0)
            cy = centres_y[top : row + 2, None]
            cx = centres_x[None, left : col + 2]
            inside = (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)
            inside[row - top, col - left] = True  # the centre cell always
            distances = torch.stack(
                torch.broadcast_tensors(cx - x0, cy - y0, x1 - cx, y1 - cy)
            ).clamp_min(0.5)
            window = classes[image, top : row + 2, left : col + 2]
            window[inside] = label + 1
            box_window = offsets[image, :, top : row + 2, left : col + 2]
            box_window[:, inside] = torch.log(distances / stride)[:, inside]
    return classes, offsets


def detection_loss(
    outputs: torch.Tensor, boxes: torch.Tensor, stride: int, box_weight: float = 1.0
) -> torch.Tensor:
    """Ground-truth loss: cross-entropy of every cell's class (background included) plus
    ``box_weight`` x smooth-L1 of the positive cells' box offsets (Chen et al.'s
    ``L_hard`` + ``L_sL1``)."""
    logits, offsets = split_outputs(outputs)
    classes, target_offsets = grid_targets(boxes, tuple(logits.shape[-2:]), stride)
    positive = classes > 0
    loss = F.cross_entropy(logits, classes)
    if bool(positive.any()):
        regression = F.smooth_l1_loss(offsets, target_offsets, reduction="none").sum(dim=1)
        loss = loss + box_weight * regression[positive].mean()
    return loss


def weighted_soft_targets(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    background_weight: float = 1.5,
) -> torch.Tensor:
    """Chen et al. eq. 2, ``-sum_c w_c P_t(c) log P_s(c)`` at every cell, averaged over cells:
    ``w_0 = background_weight`` (the paper's 1.5), ``w_c = 1`` for the object classes. Both
    distributions at ``temperature``; logits ``[B, classes + 1, G, G]``."""
    weights = torch.ones(student_logits.shape[1], device=student_logits.device)
    weights[0] = background_weight
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    student = F.log_softmax(student_logits / temperature, dim=1)
    return -(weights[None, :, None, None] * teacher * student).sum(dim=1).mean()


def box_errors(
    offsets: torch.Tensor, target_offsets: torch.Tensor, positive: torch.Tensor
) -> torch.Tensor:
    """``||R - y||^2`` (Chen et al. eq. 3's error) at each positive cell: offsets
    ``[B, 4, G, G]``, ``positive`` ``[B, G, G]``."""
    return (offsets - target_offsets).pow(2).sum(dim=1)[positive]


def bound_switched_on(
    student_error: torch.Tensor, teacher_error: torch.Tensor, margin: float = 0.0
) -> torch.Tensor:
    """Where eq. 3 penalises the student: ``||R_s - y||^2 + m > ||R_t - y||^2``."""
    return student_error + margin > teacher_error


def bounded_regression_loss(
    student_offsets: torch.Tensor,
    teacher_offsets: torch.Tensor,
    target_offsets: torch.Tensor,
    positive: torch.Tensor,
    margin: float = 0.0,
) -> torch.Tensor:
    """Chen et al. eq. 3: over the positive cells, ``||R_s - y||^2`` where
    ``||R_s - y||^2 + m > ||R_t - y||^2`` and 0 where the student is already better than the
    teacher by the margin ``m``; averaged over the positive cells (0 without any)."""
    if not bool(positive.any()):
        return student_offsets.sum() * 0.0
    student_error = box_errors(student_offsets, target_offsets, positive)
    teacher_error = box_errors(teacher_offsets, target_offsets, positive)
    bounded = torch.where(
        bound_switched_on(student_error, teacher_error, margin), student_error, 0.0
    )
    return bounded.mean()


def _dense_pair(name: str, context: TermContext) -> tuple[torch.Tensor, torch.Tensor]:
    if context.teacher_member_logits is None:
        raise KDistillError(f"{name} needs a teacher: add distill.teachers")
    teacher = context.teacher_member_logits.mean(dim=0)
    if teacher.shape != context.student_logits.shape:
        raise KDistillError(
            f"{name}: the teacher outputs {list(teacher.shape)} and the student "
            f"{list(context.student_logits.shape)}: both must predict the same classes on the "
            "same grid (output stride)"
        )
    return context.student_logits, teacher


@register_term
class DetectionLoss(LossTerm):
    """``detection_targets``: :func:`detection_loss` with the true boxes (the detector's own
    objective; use it instead of ``hard_targets`` with task: detection)."""

    name = "detection_targets"

    def __init__(self, weight: float = 1.0, stride: int = 4, box_weight: float = 1.0) -> None:
        super().__init__(weight)
        self.stride = int(stride)
        self.box_weight = float(box_weight)

    def forward(self, context: TermContext) -> torch.Tensor:
        return detection_loss(context.student_logits, context.labels, self.stride, self.box_weight)


@register_term
class DetectionSoftTargets(LossTerm):
    """``detection_soft_targets``: :func:`weighted_soft_targets` on the class logits of every
    cell, with ``background_weight`` (the paper's ``w_0 = 1.5``) and ``temperature``."""

    name = "detection_soft_targets"
    needs_live_teacher = True  # a grid of logits per image: not the logit cache's [N, classes]

    def __init__(
        self, weight: float = 1.0, temperature: float = 1.0, background_weight: float = 1.5
    ) -> None:
        super().__init__(weight)
        if temperature <= 0 or background_weight <= 0:
            raise KDistillError(
                "detection_soft_targets: temperature and background_weight must be > 0"
            )
        self.temperature = float(temperature)
        self.background_weight = float(background_weight)

    def forward(self, context: TermContext) -> torch.Tensor:
        student, teacher = _dense_pair(self.name, context)
        return weighted_soft_targets(
            split_outputs(student)[0],
            split_outputs(teacher)[0],
            self.temperature,
            self.background_weight,
        )


@register_term
class BoundedRegression(LossTerm):
    """``bounded_regression``: :func:`bounded_regression_loss` of the student's box offsets,
    bounded by the teacher's, on the positive cells of the true boxes; ``margin`` is the
    paper's ``m``, the weight its ``nu`` (0.5)."""

    name = "bounded_regression"
    needs_live_teacher = True

    def __init__(self, weight: float = 0.5, margin: float = 0.0, stride: int = 4) -> None:
        super().__init__(weight)
        self.margin = float(margin)
        self.stride = int(stride)

    def forward(self, context: TermContext) -> torch.Tensor:
        student, teacher = _dense_pair(self.name, context)
        student_logits, student_offsets = split_outputs(student)
        _, teacher_offsets = split_outputs(teacher)
        classes, targets = grid_targets(
            context.labels, tuple(student_logits.shape[-2:]), self.stride
        )
        return bounded_regression_loss(
            student_offsets, teacher_offsets.detach(), targets, classes > 0, self.margin
        )
