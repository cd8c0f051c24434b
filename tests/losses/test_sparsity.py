"""Activation-boundary distillation (Heo et al., AAAI 2019)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest
from kdistill.losses.sparsity import ActivationBoundaryLoss, activation_boundary_loss


def _identity_connector(term: ActivationBoundaryLoss, context) -> None:
    term.prepare(context)
    with torch.no_grad():
        term.connector.weight.copy_(torch.eye(term.connector.weight.shape[0]))
        term.connector.bias.zero_()


def test_hand_computed(make_context) -> None:
    student = torch.tensor([[0.5, -2.0, 1.5, -0.2]], dtype=torch.float64)
    teacher = torch.tensor([[1.0, -1.0, -1.0, 0.0]], dtype=torch.float64)
    # fires, student 0.5: (1 - 0.5)^2 = 0.25 | off, -2: relu(1 - 2)^2 = 0
    # off, 1.5: (1 + 1.5)^2 = 6.25 | T = 0 counts as off, -0.2: (1 - 0.2)^2 = 0.64
    assert activation_boundary_loss(student, teacher, 1.0).item() == pytest.approx(7.14)
    context = make_context(student_features={"s": student}, teacher_features={"t": teacher})
    term = ActivationBoundaryLoss(student="s", teacher="t", margin=1.0)
    _identity_connector(term, context)
    assert term(context).item() == pytest.approx(7.14)
    term.margin = 0.5  # (0.5 - 0.5)^2 + 0 + 2^2 + 0.3^2
    assert term(context).item() == pytest.approx(4.09)


def test_matches_numpy_on_conv_maps() -> None:
    torch.manual_seed(0)
    student = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    teacher = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    s, t, m = student.numpy(), teacher.numpy(), 0.7
    per_element = np.where(t > 0, np.maximum(m - s, 0) ** 2, np.maximum(m + s, 0) ** 2)
    expected = per_element.reshape(2, -1).sum(axis=1).mean()
    assert activation_boundary_loss(student, teacher, m).item() == pytest.approx(
        expected, rel=1e-12
    )


def test_zero_when_student_is_beyond_the_margin_on_the_teachers_side() -> None:
    # the loss only asks for the teacher's firing pattern with a margin, so a student equal to
    # a teacher whose responses all have |T| >= margin costs nothing ...
    teacher = torch.tensor([[2.0, -1.5, 1.0, -3.0]], dtype=torch.float64)
    assert activation_boundary_loss(teacher.clone(), teacher, 1.0).item() == 0.0
    # ... while responses inside the margin are pushed out even when they agree in sign
    assert activation_boundary_loss(0.1 * teacher, teacher, 1.0).item() > 0


def test_gradcheck_through_connector(make_context) -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    student = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    term = ActivationBoundaryLoss("s", "t")

    def loss(s: torch.Tensor) -> torch.Tensor:
        return term(make_context(student_features={"s": s}, teacher_features={"t": teacher}))

    loss(student)
    assert isinstance(term.connector, nn.Conv2d) and term.connector.weight.shape == (3, 2, 1, 1)
    assert torch.autograd.gradcheck(loss, (student,))


def test_reads_and_errors(make_context) -> None:
    term = ActivationBoundaryLoss(student="layers.0", teacher="layers.2")
    assert term.name == "ab" and term.needs_live_teacher
    assert term.reads() == [
        FeatureRequest("student", "layers.0"),
        FeatureRequest("teacher", "layers.2"),
    ]
    with pytest.raises(KDistillError, match="margin must be >= 0"):
        ActivationBoundaryLoss("a", "b", margin=-1)
    with pytest.raises(KDistillError, match="expected"):
        ActivationBoundaryLoss("s", "t")(
            make_context(
                student_features={"s": torch.ones(2)}, teacher_features={"t": torch.ones(2)}
            )
        )
