"""Weight matching through learned maps: A W_t B against W_s."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.weights import WeightMatchingLoss, mapped_weight_error


def _models() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    teacher = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    return student.double(), teacher.double()


def test_hand_computed_case() -> None:
    student_weight = torch.tensor([[1.0, 2.0], [0.0, -1.0]], dtype=torch.float64)
    teacher_weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [3.0, 0.0, 1.0]])
    row_map = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # picks teacher rows 0 and 2
    column_map = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])  # picks columns 0 and 2
    # A W_t B = [[1, 2], [3, 1]]; differences [[0, 0], [3, 2]]; mean of squares = 13/4
    loss = mapped_weight_error(
        student_weight, teacher_weight.double(), row_map.double(), column_map.double()
    )
    assert loss.item() == pytest.approx(13 / 4)


def test_term_matches_numpy_and_starts_from_the_teacher_block(make_context) -> None:
    student, teacher = _models()
    term = WeightMatchingLoss(pairs=[["0", "0"], ["2", "2"]])
    # It reads the teacher's weights, not its outputs, so cached teacher logits serve it.
    assert term.name == "weights" and term.reads() == [] and not term.needs_live_teacher
    loss = term(make_context(student=student, teacher=teacher))
    expected = 0.0
    for s_index in (0, 2):
        w_s = student[s_index].weight.detach().numpy()
        w_t = teacher[s_index].weight.detach().numpy()
        a = np.eye(w_s.shape[0], w_t.shape[0])
        b = np.eye(w_t.shape[1], w_s.shape[1])
        expected += np.mean((a @ w_t @ b - w_s) ** 2)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    # the maps are the term's own parameters: [out_s, out_t] and [in_t, in_s]
    shapes = [tuple(p.shape) for p in term.parameters()]
    assert shapes == [(2, 5), (4, 3), (2, 2), (5, 2)]


def test_zero_when_student_equals_teacher(make_context) -> None:
    student, _ = _models()
    teacher = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2)).double()
    teacher.load_state_dict(student.state_dict())
    term = WeightMatchingLoss(pairs=[("0", "0"), ("2", "2")])
    assert term(make_context(student=student, teacher=teacher)).item() == 0.0


def test_gradients_reach_student_and_maps_not_teacher(make_context) -> None:
    student, teacher = _models()
    term = WeightMatchingLoss(pairs=[("0", "0")])
    term(make_context(student=student, teacher=teacher)).backward()
    assert student[0].weight.grad is not None
    assert all(p.grad is not None for p in term.parameters())
    assert teacher[0].weight.grad is None


def test_gradcheck_float64() -> None:
    torch.manual_seed(1)
    args = tuple(
        torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        for shape in ((2, 3), (4, 5), (2, 4), (5, 3))
    )
    assert torch.autograd.gradcheck(mapped_weight_error, args)


def test_conv_weights_are_flattened(make_context) -> None:
    student = nn.Sequential(nn.Conv2d(2, 4, 3))
    teacher = nn.Sequential(nn.Conv2d(3, 6, 5))
    term = WeightMatchingLoss(pairs=[("0", "0")])
    term(make_context(student=student, teacher=teacher))
    assert [tuple(p.shape) for p in term.parameters()] == [(4, 6), (75, 18)]


def test_errors(make_context) -> None:
    student, teacher = _models()
    with pytest.raises(KDistillError, match="has no weight matrix"):
        WeightMatchingLoss(pairs=[("1", "0")])(make_context(student=student, teacher=teacher))
    with pytest.raises(KDistillError, match="no module '9'"):
        WeightMatchingLoss(pairs=[("9", "0")])(make_context(student=student, teacher=teacher))
    with pytest.raises(KDistillError, match="needs the teacher model"):
        WeightMatchingLoss(pairs=[("0", "0")])(make_context(student=student))
    with pytest.raises(KDistillError, match="pairs"):
        WeightMatchingLoss(pairs="0")
    with pytest.raises(KDistillError, match=r"\[student_path, teacher_path\]"):
        WeightMatchingLoss(pairs=[["0", "0", "1"]])
