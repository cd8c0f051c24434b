"""Attention transfer (Zagoruyko & Komodakis 2017): activation- and gradient-based."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest
from kdistill.losses.gradients import AttentionTransferLoss, InputGradientLoss, attention_distance

# --- activation-based ----------------------------------------------------------------------


def test_attention_hand_computed() -> None:
    # student channels (1, 2) and (0, 1) at two positions: Q_S = (1, 4 + 1) = (1, 5)
    # teacher one channel (2, 0): Q_T = (4, 0) -> normalised (1, 0)
    student = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]]], dtype=torch.float64)
    teacher = torch.tensor([[[[2.0, 0.0]]]], dtype=torch.float64)
    q_s = np.array([1.0, 5.0]) / np.sqrt(26.0)
    difference = q_s - np.array([1.0, 0.0])
    assert attention_distance(student, teacher).item() == pytest.approx(np.linalg.norm(difference))
    squared = attention_distance(student, teacher, squared=True).item()
    assert squared == pytest.approx(np.mean(difference**2))
    # p = 1: Q_S = (1, 3), Q_T = (2, 0)
    q_s1 = np.array([1.0, 3.0]) / np.sqrt(10.0)
    assert attention_distance(student, teacher, p=1).item() == pytest.approx(
        np.linalg.norm(q_s1 - np.array([1.0, 0.0]))
    )


def test_attention_term_sums_pairs_and_matches_numpy(make_context) -> None:
    torch.manual_seed(0)
    s1, t1 = (
        torch.randn(3, 2, 4, 4, dtype=torch.float64),
        torch.randn(3, 5, 4, 4, dtype=torch.float64),
    )
    s2, t2 = (
        torch.randn(3, 4, 2, 2, dtype=torch.float64),
        torch.randn(3, 3, 2, 2, dtype=torch.float64),
    )
    context = make_context(student_features={"a": s1, "b": s2}, teacher_features={"x": t1, "y": t2})
    term = AttentionTransferLoss(pairs=[["a", "x"], ["b", "y"]])
    assert term.name == "at" and term.needs_live_teacher
    assert term.reads() == [
        FeatureRequest("student", "a"),
        FeatureRequest("teacher", "x"),
        FeatureRequest("student", "b"),
        FeatureRequest("teacher", "y"),
    ]

    def numpy_distance(s: np.ndarray, t: np.ndarray) -> float:
        q_s = (s**2).sum(axis=1).reshape(len(s), -1)
        q_t = (t**2).sum(axis=1).reshape(len(t), -1)
        q_s /= np.linalg.norm(q_s, axis=1, keepdims=True)
        q_t /= np.linalg.norm(q_t, axis=1, keepdims=True)
        return float(np.mean(np.linalg.norm(q_s - q_t, axis=1)))

    expected = numpy_distance(s1.numpy(), t1.numpy()) + numpy_distance(s2.numpy(), t2.numpy())
    assert term(context).item() == pytest.approx(expected, rel=1e-12)


def test_attention_zero_when_maps_agree_and_resized() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert attention_distance(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-12)
    # maps are normalised: a scaled copy with more channels has the same attention
    student = torch.cat([teacher, teacher], dim=1) * 3
    assert attention_distance(student, teacher).item() == pytest.approx(0.0, abs=1e-12)
    # uniform maps at 2x2 and 4x4 agree after the student's map is resized
    uniform = attention_distance(torch.ones(2, 1, 2, 2), torch.ones(2, 3, 4, 4)).item()
    assert uniform == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("squared", [False, True])
def test_attention_gradcheck(squared: bool) -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    student = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s: attention_distance(s, teacher, squared=squared), (student,)
    )


def test_attention_gradient_is_finite_at_equality() -> None:
    teacher = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    student = teacher.clone().requires_grad_(True)
    attention_distance(student, teacher).backward()
    assert torch.isfinite(student.grad).all()


def test_attention_errors(make_context) -> None:
    with pytest.raises(KDistillError, match="must be > 0"):
        AttentionTransferLoss(pairs=[("a", "b")], p=0)
    with pytest.raises(KDistillError, match="non-empty list"):
        AttentionTransferLoss(pairs=[])
    term = AttentionTransferLoss(pairs=[("a", "b")])
    with pytest.raises(KDistillError, match=r"\[batch, channels, height, width\]"):
        term(
            make_context(
                student_features={"a": torch.ones(2, 3)}, teacher_features={"b": torch.ones(2, 3)}
            )
        )


# --- gradient-based ------------------------------------------------------------------------


class LinearClassifier(nn.Module):
    """logits = x W^T; W may be any tensor (so gradcheck can vary it)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T


def _numpy_input_gradient(weight: np.ndarray, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """d CE / d x for a linear classifier: (softmax(x W^T) - onehot(y)) W, one row per example."""
    logits = x @ weight.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.arange(len(x)), labels] -= 1
    return probs @ weight


X = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]], dtype=torch.float64)
Y = torch.tensor([2, 0])
W_STUDENT = torch.tensor([[0.2, -0.1, 0.4], [0.0, 0.3, -0.2], [0.5, 0.1, 0.0]], dtype=torch.float64)
W_TEACHER = torch.tensor([[1.0, 0.0, 0.5], [-0.5, 0.8, 0.0], [0.3, -0.3, 0.9]], dtype=torch.float64)


def test_input_gradient_loss_matches_closed_form(make_context) -> None:
    term = InputGradientLoss()
    assert term.name == "grad_at" and term.needs_live_teacher and term.reads() == []
    context = make_context(
        inputs=X,
        labels=Y,
        student_logits=X @ W_STUDENT.T,
        student=LinearClassifier(W_STUDENT),
        teacher=LinearClassifier(W_TEACHER),
    )
    j_s = _numpy_input_gradient(W_STUDENT.numpy(), X.numpy(), Y.numpy())
    j_t = _numpy_input_gradient(W_TEACHER.numpy(), X.numpy(), Y.numpy())
    expected = np.mean(np.sum((j_s - j_t) ** 2, axis=1))
    assert term(context).item() == pytest.approx(expected, rel=1e-12)


def test_input_gradient_loss_zero_for_identical_models(make_context) -> None:
    context = make_context(
        inputs=X,
        labels=Y,
        student=LinearClassifier(W_STUDENT),
        teacher=LinearClassifier(W_STUDENT.clone()),
    )
    assert InputGradientLoss()(context).item() == 0.0


def test_input_gradient_loss_double_backprop_gradcheck(make_context) -> None:
    teacher = LinearClassifier(W_TEACHER)

    def loss(weight: torch.Tensor) -> torch.Tensor:
        context = make_context(
            inputs=X, labels=Y, student=LinearClassifier(weight), teacher=teacher
        )
        return InputGradientLoss()(context)

    assert torch.autograd.gradcheck(loss, (W_STUDENT.clone().requires_grad_(True),))


def test_input_gradient_loss_trains_student_only_and_handles_ensembles(make_context) -> None:
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    member = nn.Sequential(nn.Linear(3, 3)).double()

    class Ensemble(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList([member, member])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([m(x) for m in self.members])

    context = make_context(inputs=X, labels=Y, student=student, teacher=Ensemble())
    with torch.no_grad():  # as in the trainer's dry run: the term enables grad itself
        dry = InputGradientLoss()(context)
    loss = InputGradientLoss()(context)
    assert loss.item() == pytest.approx(dry.item())
    single = InputGradientLoss()(make_context(inputs=X, labels=Y, student=student, teacher=member))
    assert loss.item() == pytest.approx(single.item())  # mean logits of identical members
    loss.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in member.parameters())


def test_input_gradient_loss_errors(make_context) -> None:
    student = LinearClassifier(W_STUDENT)
    with pytest.raises(KDistillError, match="needs the teacher model"):
        InputGradientLoss()(make_context(inputs=X, labels=Y, student=student))
    with pytest.raises(KDistillError, match="needs class labels"):
        InputGradientLoss()(
            make_context(inputs=X, labels=Y, student=student, teacher=student, has_labels=False)
        )
    with pytest.raises(KDistillError, match="must be floating point"):
        InputGradientLoss()(
            make_context(
                inputs=torch.ones(2, 3, dtype=torch.long),
                labels=Y,
                student=student,
                teacher=student,
            )
        )
