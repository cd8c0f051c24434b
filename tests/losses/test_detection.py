"""Chen et al. (2017) detection distillation terms and the grid targets, by hand."""

import math

import pytest
import torch

from kdistill.losses.base import TermContext
from kdistill.losses.detection import (
    BoundedRegression,
    bounded_regression_loss,
    grid_targets,
    weighted_soft_targets,
)
from kdistill.losses.registry import build_term


def test_grid_targets_mark_the_centre_cells_inside_the_box():
    boxes = torch.tensor([[[3, 4, 4, 20, 12], [-1, -1, -1, -1, -1]]])
    classes, offsets = grid_targets(boxes, (16, 16), 4)
    # Centre (12, 8): cell row 2, col 3; neighbours whose centres lie inside the box: rows 1-2
    # (centres y = 6, 10; 14 is below y1 = 12), cols 2-4 (centres x = 10, 14, 18).
    expected = torch.zeros(16, 16, dtype=torch.long)
    expected[1:3, 2:5] = 4
    assert torch.equal(classes[0], expected)
    # Cell (2, 3) has centre (14, 10): left 10, top 6, right 6, bottom 2 pixels.
    assert torch.allclose(offsets[0, :, 2, 3], torch.log(torch.tensor([10.0, 6.0, 6.0, 2.0]) / 4))
    assert float(offsets[0, :, 0, 0].abs().sum()) == 0


def test_soft_targets_weigh_the_background_by_w0():
    student = torch.zeros(1, 3, 1, 1)  # uniform: log q = -log 3 for each class
    teacher = torch.tensor([0.5, 1.0, -1.0]).reshape(1, 3, 1, 1)
    p = torch.softmax(teacher.flatten(), 0)
    expected = float((1.5 * p[0] + p[1] + p[2]) * math.log(3))
    assert float(weighted_soft_targets(student, teacher)) == pytest.approx(expected, rel=1e-6)
    plain = float(p.sum() * math.log(3))
    assert float(weighted_soft_targets(student, teacher, background_weight=1.0)) == pytest.approx(
        plain
    )


def test_bounded_regression_switches_off_when_the_student_beats_the_teacher():
    target = torch.zeros(1, 4, 1, 2)
    positive = torch.ones(1, 1, 2, dtype=torch.bool)
    student = torch.zeros(1, 4, 1, 2, requires_grad=True)
    teacher = torch.zeros(1, 4, 1, 2)
    with torch.no_grad():
        student[0, 0, 0] = torch.tensor([1.0, 3.0])  # errors 1 and 9
    teacher[0, 0, 0] = torch.tensor([2.0, 2.0])  # errors 4 and 4
    # Cell 0: 1 + 0 > 4 is false -> 0; cell 1: 9 > 4 -> 9; mean over 2 positive cells.
    loss = bounded_regression_loss(student, teacher, target, positive, margin=0.0)
    assert float(loss.detach()) == pytest.approx(4.5)
    loss.backward()
    assert float(student.grad[0, 0, 0, 0]) == 0.0  # switched off: no gradient at all
    assert float(student.grad[0, 0, 0, 1]) == pytest.approx(2 * 3.0 / 2)
    # A margin of 5 keeps cell 0 on (1 + 5 > 4): (1 + 9) / 2.
    with_margin = bounded_regression_loss(student, teacher, target, positive, 5.0)
    assert float(with_margin.detach()) == pytest.approx(5.0)


def test_bounded_regression_term_reads_the_true_boxes():
    term = build_term("bounded_regression", 0.5, margin=0.0)
    assert isinstance(term, BoundedRegression) and term.needs_live_teacher
    boxes = torch.tensor([[[0, 4, 4, 20, 12]]])
    classes, targets = grid_targets(boxes, (4, 4), 4)
    teacher = torch.zeros(1, 2 + 4, 4, 4)
    teacher[:, 2:] = targets  # a perfect teacher: the student is never better, always penalised
    student = torch.zeros(1, 6, 4, 4)
    context = TermContext(
        inputs=torch.zeros(1),
        labels=boxes,
        student_logits=student,
        teacher_member_logits=teacher[None],
        student=torch.nn.Identity(),
    )
    positive = classes > 0
    expected = targets.pow(2).sum(dim=1)[positive].mean()
    assert float(term(context)) == pytest.approx(float(expected))
