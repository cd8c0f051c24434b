"""Decoupled KD (Zhao et al., CVPR 2022) against hand and numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.logits import DecoupledKDLoss, decoupled_kd, decoupled_kd_parts


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _numpy_dkd_parts(student, teacher, labels, temperature):
    """TCKD and NCKD straight from the paper's definitions, one example at a time."""
    tckd, nckd = [], []
    for z_s, z_t, label in zip(student, teacher, labels, strict=True):
        p_s, p_t = _softmax(z_s / temperature), _softmax(z_t / temperature)
        b_s = np.array([p_s[label], 1 - p_s[label]])
        b_t = np.array([p_t[label], 1 - p_t[label]])
        tckd.append(np.sum(b_t * np.log(b_t / b_s)))
        rest = [i for i in range(len(z_s)) if i != label]
        hat_s = p_s[rest] / (1 - p_s[label])
        hat_t = p_t[rest] / (1 - p_t[label])
        nckd.append(np.sum(hat_t * np.log(hat_t / hat_s)))
    return np.array(tckd), np.array(nckd)


STUDENT = np.array([[1.0, -0.5, 0.3, 2.0], [0.2, 0.1, -1.0, 0.5]])
TEACHER = np.array([[2.5, 0.0, -0.7, 1.0], [-0.3, 1.4, 0.2, 0.0]])
LABELS = np.array([0, 1])


def test_two_classes_hand_computed() -> None:
    # student p = [1/2, 1/2], teacher p = [3/4, 1/4] at T = 1, target 0:
    # TCKD = 3/4 ln(3/2) + 1/4 ln(1/2); one non-target class, so NCKD = 0.
    student = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    teacher = torch.tensor([[math.log(3.0), 0.0]], dtype=torch.float64)
    labels = torch.tensor([0])
    tckd, nckd = decoupled_kd_parts(student, teacher, labels, temperature=1.0)
    assert tckd.item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-12)
    assert tckd.item() == pytest.approx(0.130812035, abs=1e-8)
    assert nckd.item() == pytest.approx(0.0, abs=1e-12)
    loss = decoupled_kd(student, teacher, labels, temperature=2.0, alpha=3.0, beta=5.0)
    # at T = 2 teacher p = softmax([ln3/2, 0]) = [sqrt3, 1]/(sqrt3 + 1)
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    expected = 4 * 3.0 * (p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p)))
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_matches_numpy_definitions() -> None:
    temperature, alpha, beta = 2.0, 1.5, 8.0
    tckd_np, nckd_np = _numpy_dkd_parts(STUDENT, TEACHER, LABELS, temperature)
    student = torch.tensor(STUDENT)
    teacher = torch.tensor(TEACHER)
    labels = torch.tensor(LABELS)
    tckd, nckd = decoupled_kd_parts(student, teacher, labels, temperature)
    np.testing.assert_allclose(tckd.numpy(), tckd_np, rtol=1e-12)
    np.testing.assert_allclose(nckd.numpy(), nckd_np, rtol=1e-12)
    loss = decoupled_kd(student, teacher, labels, temperature, alpha, beta)
    expected = temperature**2 * np.mean(alpha * tckd_np + beta * nckd_np)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_classic_kd_decomposes_into_tckd_and_weighted_nckd() -> None:
    # DKD paper, section 3.1: KL(p^T || p^S) = TCKD + (1 - p_t^T) NCKD, per example.
    temperature = 3.0
    student, teacher, labels = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)
    tckd, nckd = decoupled_kd_parts(student, teacher, labels, temperature)
    log_p_s = F.log_softmax(student / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher / temperature, dim=-1)
    classic_kd = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)
    p_target_teacher = log_p_t.exp().gather(1, labels[:, None]).squeeze(1)
    decomposed = tckd + (1 - p_target_teacher) * nckd
    np.testing.assert_allclose(classic_kd.numpy(), decomposed.numpy(), rtol=1e-12)
    # so DKD with alpha = beta = 1 upper-bounds classic KD (NCKD is suppressed in KD)
    dkd = decoupled_kd(student, teacher, labels, temperature, 1.0, 1.0)
    assert dkd.item() >= temperature**2 * classic_kd.mean().item()


def test_zero_when_student_equals_teacher() -> None:
    logits = torch.tensor(TEACHER)
    loss = decoupled_kd(logits.clone(), logits, torch.tensor(LABELS), 4.0, 1.0, 8.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-14)


def test_gradcheck_float64() -> None:
    teacher, labels = torch.tensor(TEACHER), torch.tensor(LABELS)
    student = torch.tensor(STUDENT, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s: decoupled_kd(s, teacher, labels, 2.0, 1.0, 8.0), (student,)
    )


def test_extreme_logits_stay_finite() -> None:
    student = torch.tensor([[300.0, -300.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[-300.0, 300.0, 0.0]])
    loss = decoupled_kd(student, teacher, torch.tensor([0]), 1.0, 1.0, 8.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_term_reads_mean_teacher_logits_and_labels(make_context) -> None:
    term = DecoupledKDLoss(weight=2.0, temperature=2.0, alpha=1.0, beta=4.0)
    assert term.name == "dkd" and term.weight == 2.0
    context = make_context(
        student_logits=torch.tensor(STUDENT),
        teacher_logits=torch.tensor(TEACHER),
        labels=torch.tensor(LABELS),
    )
    expected = decoupled_kd(
        torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), 2.0, 1.0, 4.0
    )
    assert term(context).item() == pytest.approx(expected.item(), rel=1e-12)


def test_term_errors(make_context) -> None:
    term = DecoupledKDLoss()
    with pytest.raises(KDistillError, match="needs a teacher"):
        term(make_context(student_logits=torch.tensor(STUDENT)))
    with pytest.raises(KDistillError, match="needs class labels"):
        term(
            make_context(
                student_logits=torch.tensor(STUDENT),
                teacher_logits=torch.tensor(TEACHER),
                has_labels=False,
            )
        )
    with pytest.raises(KDistillError, match="temperature must be > 0"):
        DecoupledKDLoss(temperature=0)
    with pytest.raises(KDistillError, match="integer class labels"):
        decoupled_kd_parts(
            torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor([[1.0, 0.0]]), 1.0
        )
