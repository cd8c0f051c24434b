"""Building blocks of the terms that match captured features (FitNet, NST, AT, AB, RKD, SP).

Reading a captured feature out of a :class:`~kdistill.losses.base.TermContext`, resizing a
student map to the teacher's spatial size, building the learned adapter (regressor,
connector) that maps student channels to teacher channels, and checking layer paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, LossTerm, TermContext

FEATURE_SHAPES = "[batch, features], [batch, tokens, features] or [batch, channels, height, width]"


def check_path(term_name: str, option: str, path: Any) -> str:
    """``path`` as a module path string, or a KDistillError naming the term's option."""
    if not isinstance(path, str) or not path:
        raise KDistillError(
            f"{term_name}: option {option!r} must be a module path such as 'layers.2', got {path!r}"
        )
    return path


def check_path_pairs(term_name: str, pairs: Any) -> list[tuple[str, str]]:
    """``pairs`` (a list of ``[student_path, teacher_path]``) as a list of string tuples."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
        raise KDistillError(
            f"{term_name}: option 'pairs' must be a non-empty list of [student_path, teacher_path], "
            f"got {pairs!r}"
        )
    checked: list[tuple[str, str]] = []
    for pair in pairs:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise KDistillError(
                f"{term_name}: each entry of 'pairs' must be [student_path, teacher_path], got {pair!r}"
            )
        checked.append(
            (check_path(term_name, "pairs", pair[0]), check_path(term_name, "pairs", pair[1]))
        )
    return checked


def captured_feature(context: TermContext, term_name: str, side: str, path: str) -> torch.Tensor:
    """The output of module ``path`` on ``side`` ("student"/"teacher") for this batch.

    Teacher features are detached: only the student (and the term's adapters) learn.
    """
    request = FeatureRequest(side, path, "output")
    if request not in context.features:
        raise KDistillError(
            f"{term_name}: the {side} output of module {path!r} was not captured; the trainer "
            "must capture every FeatureRequest in the term's reads() before calling it"
        )
    feature = context.features[request]
    return feature.detach() if side == "teacher" else feature


def require_teacher(context: TermContext, term_name: str) -> nn.Module:
    """The teacher model, or a KDistillError saying the term needs one."""
    if context.teacher is None:
        raise KDistillError(
            f"the {term_name!r} term needs the teacher model itself: add distill.teachers "
            "(one live teacher, not cached logits)"
        )
    return context.teacher


def require_labels(context: TermContext, term_name: str) -> torch.Tensor:
    """Class-index labels of the batch, or a KDistillError saying the term needs them."""
    if not context.has_labels:
        raise KDistillError(
            f"the {term_name!r} term needs class labels but this data has none: use a labelled "
            "dataset or drop the term"
        )
    return context.labels


def check_feature_rank(term_name: str, side: str, path: str, feature: torch.Tensor) -> None:
    """Features must be 2-D, 3-D or 4-D (see :data:`FEATURE_SHAPES`)."""
    if feature.dim() not in (2, 3, 4):
        raise KDistillError(
            f"{term_name}: the {side} feature at {path!r} has shape {tuple(feature.shape)}; "
            f"expected {FEATURE_SHAPES}"
        )


def resize_to(student_map: torch.Tensor, teacher_map: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize a ``[B, C, H, W]`` student map to the teacher's ``H x W``.

    Maps that are not 4-D, or already the right size, are returned unchanged.
    """
    if student_map.dim() != 4 or teacher_map.dim() != 4:
        return student_map
    if student_map.shape[-2:] == teacher_map.shape[-2:]:
        return student_map
    return F.interpolate(
        student_map, size=tuple(teacher_map.shape[-2:]), mode="bilinear", align_corners=False
    )


def build_channel_adapter(student_feature: torch.Tensor, out_channels: int) -> nn.Module:
    """A learned linear map from the student's channels to ``out_channels``.

    ``nn.Linear`` on the last axis for ``[B, D]`` and ``[B, N, D]`` features, a 1x1
    ``nn.Conv2d`` on the channel axis for ``[B, C, H, W]`` maps; created on the feature's
    device and dtype.
    """
    device, dtype = student_feature.device, student_feature.dtype
    if student_feature.dim() == 4:
        return nn.Conv2d(
            student_feature.shape[1], out_channels, kernel_size=1, device=device, dtype=dtype
        )
    return nn.Linear(student_feature.shape[-1], out_channels, device=device, dtype=dtype)


def channel_count(feature: torch.Tensor) -> int:
    """Channels of a 4-D map, or the feature size (last axis) of 2-D/3-D features."""
    return feature.shape[1] if feature.dim() == 4 else feature.shape[-1]


def check_same_layout(
    term_name: str, student: torch.Tensor, teacher: torch.Tensor, paths: tuple[str, str]
) -> None:
    """Student and teacher features must have the same rank and batch (and token count)."""
    student_path, teacher_path = paths
    if student.dim() != teacher.dim() or student.shape[0] != teacher.shape[0]:
        raise KDistillError(
            f"{term_name}: student feature {student_path!r} {tuple(student.shape)} and teacher "
            f"feature {teacher_path!r} {tuple(teacher.shape)} differ in rank or batch size; "
            "pick layers of the same kind (both [B, D] or both [B, C, H, W])"
        )
    if student.dim() == 3 and student.shape[1] != teacher.shape[1]:
        raise KDistillError(
            f"{term_name}: student feature {student_path!r} has {student.shape[1]} tokens but "
            f"teacher feature {teacher_path!r} has {teacher.shape[1]}; pick layers with equal "
            "sequence lengths"
        )


class FeaturePair(LossTerm):
    """Base of terms that compare the output of one student module with one teacher module,
    both given by module path (NST, SP, and through :class:`AdaptedFeaturePair` FitNet, AB)."""

    needs_live_teacher = True

    def __init__(self, student: str, teacher: str, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.student_path = check_path(self.name, "student", student)
        self.teacher_path = check_path(self.name, "teacher", teacher)

    def reads(self) -> list[FeatureRequest]:
        return [
            FeatureRequest("student", self.student_path),
            FeatureRequest("teacher", self.teacher_path),
        ]

    def captured_pair(self, context: TermContext) -> tuple[torch.Tensor, torch.Tensor]:
        """The captured ``(student, teacher)`` tensors of this batch (the teacher's detached)."""
        return (
            captured_feature(context, self.name, "student", self.student_path),
            captured_feature(context, self.name, "teacher", self.teacher_path),
        )


class AdaptedFeaturePair(FeaturePair):
    """Base of terms that compare one student layer with one teacher layer through a learned
    linear adapter onto the teacher's width (FitNet's regressor, AB's connector).

    The adapter (``nn.Linear`` for ``[B, D]`` / ``[B, N, D]``, a 1x1 ``nn.Conv2d`` for
    ``[B, C, H, W]``) is built from the first batch's shapes, in :meth:`prepare` or on the first
    forward pass, and belongs to the term: trained with the student, never exported. Its
    output is resized bilinearly to the teacher's ``H x W`` when they differ.
    """

    def __init__(self, student: str, teacher: str, weight: float = 1.0) -> None:
        super().__init__(student, teacher, weight)
        self.adapter: nn.Module | None = None

    def _features(self, context: TermContext) -> tuple[torch.Tensor, torch.Tensor]:
        student, teacher = self.captured_pair(context)
        check_feature_rank(self.name, "student", self.student_path, student)
        check_feature_rank(self.name, "teacher", self.teacher_path, teacher)
        check_same_layout(self.name, student, teacher, (self.student_path, self.teacher_path))
        return student, teacher

    def prepare(self, context: TermContext) -> None:
        """Build the adapter from the first batch's feature shapes (no-op afterwards)."""
        if self.adapter is None:
            student, teacher = self._features(context)
            self.adapter = build_channel_adapter(student, channel_count(teacher))

    def adapted_features(self, context: TermContext) -> tuple[torch.Tensor, torch.Tensor]:
        """``(adapter(student) resized to the teacher's map, teacher)`` for this batch."""
        self.prepare(context)
        assert self.adapter is not None
        student, teacher = self._features(context)
        return resize_to(self.adapter(student), teacher), teacher
