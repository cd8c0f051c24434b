"""Activation-boundary distillation: transfer which hidden neurons fire, not their values.

Reference: B. Heo, M. Lee, S. Yun, J. Y. Choi, "Knowledge Transfer via Distillation of
Activation Boundaries Formed by Hidden Neurons", AAAI 2019, section 3. With ``T`` the
teacher's pre-activation response, ``S`` the student's, ``r`` a learned connector,
``rho(x) = 1[x > 0]`` and a margin ``mu``, the activation transfer loss is approximated by the
piecewise-differentiable

    L = || rho(T) ⊙ relu(mu - r(S))^2 + (1 - rho(T)) ⊙ relu(mu + r(S))^2 ||_1,

which is zero once every student neuron sits on the teacher neuron's side of the boundary,
at least ``mu`` away from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, LossTerm, TermContext
from kdistill.losses.feature_ops import (
    build_channel_adapter,
    captured_feature,
    channel_count,
    check_feature_rank,
    check_path,
    check_same_layout,
    resize_to,
)


def activation_boundary_loss(
    connected_student: torch.Tensor, teacher_preactivation: torch.Tensor, margin: float
) -> torch.Tensor:
    """Heo et al.'s approximate activation transfer loss, summed per example, batch mean.

    Where the teacher neuron fires (``T > 0``) the student is pushed above ``+margin``,
    elsewhere below ``-margin``; each element costs the squared hinge ``relu(.)^2``.
    """
    if connected_student.shape != teacher_preactivation.shape:
        raise KDistillError(
            f"ab: connected student response {tuple(connected_student.shape)} and teacher "
            f"pre-activation {tuple(teacher_preactivation.shape)} differ in shape"
        )
    fires = (teacher_preactivation > 0).to(connected_student.dtype)
    per_element = fires * F.relu(margin - connected_student).pow(2) + (1 - fires) * F.relu(
        margin + connected_student
    ).pow(2)
    return per_element.flatten(1).sum(dim=1).mean()


class ActivationBoundaryLoss(LossTerm):
    """Activation boundaries (Heo et al., AAAI 2019) between two pre-activation layers.

    ``student`` and ``teacher`` are paths of the layers *before* the ReLU (a Linear or Conv,
    or a BatchNorm that follows one): the term reads their outputs, the pre-activations.
    The connector ``r`` is a learned linear map to the teacher's width (``nn.Linear`` for
    ``[B, D]`` / ``[B, N, D]``, a 1x1 ``nn.Conv2d`` for ``[B, C, H, W]``, its output resized
    bilinearly to the teacher's ``H x W``), created on the first forward pass or
    :meth:`prepare`, and trained with the student. The paper uses this loss to initialise the
    student before ordinary training; that schedule belongs to the trainer.
    """

    name = "ab"
    needs_live_teacher = True

    def __init__(
        self, student: str, teacher: str, weight: float = 1.0, margin: float = 1.0
    ) -> None:
        super().__init__(weight)
        self.student_path = check_path(self.name, "student", student)
        self.teacher_path = check_path(self.name, "teacher", teacher)
        if margin < 0:
            raise KDistillError(f"ab: margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.connector: nn.Module | None = None

    def reads(self) -> list[FeatureRequest]:
        return [
            FeatureRequest("student", self.student_path),
            FeatureRequest("teacher", self.teacher_path),
        ]

    def _features(self, context: TermContext) -> tuple[torch.Tensor, torch.Tensor]:
        student = captured_feature(context, self.name, "student", self.student_path)
        teacher = captured_feature(context, self.name, "teacher", self.teacher_path)
        check_feature_rank(self.name, "student", self.student_path, student)
        check_feature_rank(self.name, "teacher", self.teacher_path, teacher)
        check_same_layout(self.name, student, teacher, (self.student_path, self.teacher_path))
        return student, teacher

    def prepare(self, context: TermContext) -> None:
        """Build the connector from the first batch's feature shapes (no-op afterwards)."""
        if self.connector is None:
            student, teacher = self._features(context)
            self.connector = build_channel_adapter(student, channel_count(teacher))

    def forward(self, context: TermContext) -> torch.Tensor:
        self.prepare(context)
        assert self.connector is not None
        student, teacher = self._features(context)
        connected = resize_to(self.connector(student), teacher)
        return activation_boundary_loss(connected, teacher, self.margin)
