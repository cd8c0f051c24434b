"""RKD distance/angle (Park et al., CVPR 2019) and similarity-preserving KD (Tung & Mori 2019)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest
from kdistill.losses.relations import (
    RelationalAngleLoss,
    RelationalDistanceLoss,
    SimilarityPreservingLoss,
    rkd_angle_loss,
    rkd_distance_loss,
    similarity_preserving_loss,
)


def _huber(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) <= 1, 0.5 * x**2, np.abs(x) - 0.5)


def _numpy_rkd_distance(s: np.ndarray, t: np.ndarray) -> float:
    def psi(e: np.ndarray) -> np.ndarray:
        d = np.array(
            [np.linalg.norm(e[i] - e[j]) for i, j in itertools.permutations(range(len(e)), 2)]
        )
        return d / d.mean()

    return float(np.mean(_huber(psi(s) - psi(t))))


def _numpy_rkd_angle(s: np.ndarray, t: np.ndarray) -> float:
    def psi(e: np.ndarray) -> np.ndarray:
        values = []
        for i, j, k in itertools.permutations(range(len(e)), 3):
            e_ij = (e[i] - e[j]) / np.linalg.norm(e[i] - e[j])
            e_kj = (e[k] - e[j]) / np.linalg.norm(e[k] - e[j])
            values.append(e_ij @ e_kj)
        return np.array(values)

    return float(np.mean(_huber(psi(s) - psi(t))))


def _rotation(dimension: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(
        torch.randn(dimension, dimension, generator=generator, dtype=torch.float64)
    )
    return q


# --- RKD distance --------------------------------------------------------------------------


def test_rkd_distance_hand_computed() -> None:
    # student 0, 1, 3 on a line: distances 1, 3, 2 (mean 2) -> psi 0.5, 1.5, 1
    # teacher 0, 1, 2: distances 1, 2, 1 (mean 4/3) -> psi 0.75, 1.5, 0.75
    # differences -0.25, 0, 0.25 -> Huber 1/32, 0, 1/32, each pair counted in both orders
    student = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    teacher = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    assert rkd_distance_loss(student, teacher).item() == pytest.approx((4 / 32) / 6)


def test_rkd_distance_matches_numpy_with_large_differences() -> None:
    torch.manual_seed(0)
    student = torch.randn(5, 3, dtype=torch.float64)
    student[0] *= 20  # some psi differences beyond the Huber threshold
    teacher = torch.randn(5, 4, dtype=torch.float64)
    expected = _numpy_rkd_distance(student.numpy(), teacher.numpy())
    assert rkd_distance_loss(student, teacher).item() == pytest.approx(expected, rel=1e-12)


def test_rkd_invariant_to_scale_rotation_and_translation() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(5, 3, dtype=torch.float64)
    student = 4.0 * teacher @ _rotation(3, 1) + 1.5
    assert rkd_distance_loss(student, teacher).item() == pytest.approx(0.0, abs=1e-12)
    assert rkd_angle_loss(student, teacher).item() == pytest.approx(0.0, abs=1e-12)


def test_rkd_distance_gradcheck() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(4, 3, dtype=torch.float64)
    student = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: rkd_distance_loss(s, teacher), (student,))


# --- RKD angle -----------------------------------------------------------------------------


def test_rkd_angle_hand_computed() -> None:
    # student: right isosceles triangle, angles 90, 45, 45 degrees (cosines 0, 1/sqrt2, 1/sqrt2);
    # teacher: equilateral triangle, every angle 60 degrees (cosine 1/2).
    student = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]], dtype=torch.float64)
    # each vertex appears in 2 ordered triplets; cosines 0, 1/sqrt2, 1/sqrt2 vs 1/2
    expected = (2 * 0.5 * 0.5**2 + 4 * 0.5 * (1 / math.sqrt(2) - 0.5) ** 2) / 6
    assert rkd_angle_loss(student, teacher).item() == pytest.approx(expected)


def test_rkd_angle_matches_numpy() -> None:
    torch.manual_seed(0)
    student = torch.randn(5, 3, dtype=torch.float64)
    teacher = torch.randn(5, 6, dtype=torch.float64)
    expected = _numpy_rkd_angle(student.numpy(), teacher.numpy())
    assert rkd_angle_loss(student, teacher).item() == pytest.approx(expected, rel=1e-12)


def test_rkd_angle_gradcheck_and_small_batches() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(4, 3, dtype=torch.float64)
    student = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: rkd_angle_loss(s, teacher), (student,))
    pair = torch.randn(2, 3, requires_grad=True)
    assert rkd_angle_loss(pair, pair.detach()).item() == 0.0
    assert rkd_distance_loss(pair[:1], pair[:1].detach()).item() == 0.0


def test_rkd_terms_on_logits_or_features(make_context) -> None:
    torch.manual_seed(0)
    s_logits, t_logits = (
        torch.randn(4, 3, dtype=torch.float64),
        torch.randn(4, 3, dtype=torch.float64),
    )
    on_logits = make_context(student_logits=s_logits, teacher_logits=t_logits)
    distance = RelationalDistanceLoss()
    angle = RelationalAngleLoss()
    assert distance.reads() == [] and not distance.needs_live_teacher
    assert distance(on_logits).item() == pytest.approx(rkd_distance_loss(s_logits, t_logits).item())
    assert angle(on_logits).item() == pytest.approx(rkd_angle_loss(s_logits, t_logits).item())
    s_feat, t_feat = (
        torch.randn(4, 2, 3, dtype=torch.float64),
        torch.randn(4, 7, dtype=torch.float64),
    )
    on_features = make_context(student_features={"pen": s_feat}, teacher_features={"fc1": t_feat})
    term = RelationalDistanceLoss(student="pen", teacher="fc1")
    assert term.needs_live_teacher
    assert term.reads() == [FeatureRequest("student", "pen"), FeatureRequest("teacher", "fc1")]
    expected = _numpy_rkd_distance(s_feat.reshape(4, -1).numpy(), t_feat.numpy())
    assert term(on_features).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(KDistillError, match="give both 'student' and 'teacher'"):
        RelationalAngleLoss(student="pen")
    with pytest.raises(KDistillError, match="needs a teacher"):
        RelationalDistanceLoss()(make_context(student_logits=s_logits))


# --- SP ------------------------------------------------------------------------------------


def _numpy_sp(s: np.ndarray, t: np.ndarray) -> float:
    def g(a: np.ndarray) -> np.ndarray:
        a = a.reshape(len(a), -1)
        gram = a @ a.T
        return gram / np.linalg.norm(gram, axis=1, keepdims=True)

    return float(np.sum((g(t) - g(s)) ** 2) / len(s) ** 2)


def test_sp_hand_computed() -> None:
    # student rows orthogonal: G_S = I; teacher rows equal: G_T rows (1, 1)/sqrt2
    # ||G_T - G_S||_F^2 = 2 (1 - 1/sqrt2)^2 + 2 (1/sqrt2)^2 = (3 - 2 sqrt2) + 1; divided by b^2 = 4
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    teacher = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    expected = (2 * (1 - 1 / math.sqrt(2)) ** 2 + 2 * 0.5) / 4
    assert similarity_preserving_loss(student, teacher).item() == pytest.approx(expected)
    assert expected == pytest.approx((2 - math.sqrt(2)) / 2)


def test_sp_matches_numpy_and_zero_when_equal(make_context) -> None:
    torch.manual_seed(0)
    student = torch.randn(3, 2, 2, 2, dtype=torch.float64)
    teacher = torch.randn(3, 5, 2, 2, dtype=torch.float64)
    term = SimilarityPreservingLoss(student="s", teacher="t")
    assert term.name == "sp"
    context = make_context(student_features={"s": student}, teacher_features={"t": teacher})
    assert term(context).item() == pytest.approx(
        _numpy_sp(student.numpy(), teacher.numpy()), rel=1e-12
    )
    assert similarity_preserving_loss(teacher.clone(), teacher).item() == pytest.approx(
        0.0, abs=1e-14
    )


def test_sp_gradcheck() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(3, 4, dtype=torch.float64)
    student = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: similarity_preserving_loss(s, teacher), (student,))
