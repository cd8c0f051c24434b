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
from kdistill.losses.base import TermContext, register_term
from kdistill.losses.feature_terms import (
    AdaptedFeaturePair,
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


@register_term
class ActivationBoundaryLoss(AdaptedFeaturePair):
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

    def __init__(
        self, student: str, teacher: str, weight: float = 1.0, margin: float = 1.0
    ) -> None:
        super().__init__(student, teacher, weight)
        if margin < 0:
            raise KDistillError(f"ab: margin must be >= 0, got {margin}")
        self.margin = float(margin)

    @property
    def connector(self) -> nn.Module | None:
        """The paper's name for the adapter."""
        return self.adapter

    def forward(self, context: TermContext) -> torch.Tensor:
        connected, teacher = self.adapted_features(context)
        return activation_boundary_loss(connected, teacher, self.margin)
