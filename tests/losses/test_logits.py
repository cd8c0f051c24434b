"""Hinton et al. (2015), section 2: the soft-target loss, its gradient and the ensemble means."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.logits import (
    logit_squared_error,
    soft_target_cross_entropy,
    teacher_log_probs,
)


def _soft_term_gradient(student_logits, teacher_logits, temperature, scale=False):
    student_logits = student_logits.clone().requires_grad_(True)
    targets = teacher_log_probs(teacher_logits.unsqueeze(0), temperature)
    loss = soft_target_cross_entropy(
        student_logits, targets, temperature, scale_by_temperature_squared=scale
    )
    (gradient,) = torch.autograd.grad(loss * len(student_logits), student_logits)
    return gradient


def test_value_matches_hand_computed_cross_entropy():
    student = torch.tensor([[1.0, 2.0, 3.0]])
    teacher = torch.tensor([[3.0, 1.0, 0.0]])
    temperature = 2.0
    p = [math.exp(v / temperature) for v in (3.0, 1.0, 0.0)]
    p = [v / sum(p) for v in p]
    q = [math.exp(v / temperature) for v in (1.0, 2.0, 3.0)]
    q = [v / sum(q) for v in q]
    expected = -sum(pi * math.log(qi) for pi, qi in zip(p, q, strict=True)) * temperature**2
    loss = soft_target_cross_entropy(
        student, teacher_log_probs(teacher[None], temperature), temperature
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.5, 20.0])
def test_gradient_is_q_minus_p_over_t_equation_2(temperature):
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(4, 10, generator=generator, dtype=torch.float64) * 3
    teacher = torch.randn(4, 10, generator=generator, dtype=torch.float64) * 3
    gradient = _soft_term_gradient(student, teacher, temperature)
    q = F.softmax(student / temperature, dim=1)
    p = F.softmax(teacher / temperature, dim=1)
    torch.testing.assert_close(gradient, (q - p) / temperature)


def test_high_temperature_gradient_approaches_logit_matching():
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(8, 10, generator=generator, dtype=torch.float64)
    teacher = torch.randn(8, 10, generator=generator, dtype=torch.float64)
    student, teacher = (
        student - student.mean(1, keepdim=True),
        teacher - teacher.mean(1, keepdim=True),
    )
    classes = student.shape[1]
    errors = []
    for temperature in (10.0, 100.0, 1000.0):
        gradient = _soft_term_gradient(student, teacher, temperature)
        approximation = (student - teacher) / (classes * temperature**2)
        errors.append(((gradient - approximation).norm() / approximation.norm()).item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


def test_temperature_squared_keeps_gradient_size_roughly_constant():
    generator = torch.Generator().manual_seed(2)
    student = torch.randn(32, 10, generator=generator, dtype=torch.float64)
    teacher = torch.randn(32, 10, generator=generator, dtype=torch.float64) * 2
    scaled = [
        _soft_term_gradient(student, teacher, t, scale=True).norm().item()
        for t in (8.0, 20.0, 50.0)
    ]
    unscaled = [
        _soft_term_gradient(student, teacher, t, scale=False).norm().item()
        for t in (8.0, 20.0, 50.0)
    ]
    assert max(scaled) / min(scaled) < 1.3
    assert max(unscaled) / min(unscaled) > 30  # without T^2 it shrinks as 1/T^2


def test_geometric_mean_is_softmax_of_mean_log_probabilities():
    generator = torch.Generator().manual_seed(3)
    members = torch.randn(3, 5, 7, generator=generator, dtype=torch.float64) * 4
    temperature = 3.0
    log_probs = F.log_softmax(members / temperature, dim=-1)
    product = log_probs.exp().prod(dim=0) ** (1 / 3)
    expected = product / product.sum(dim=-1, keepdim=True)
    got = teacher_log_probs(members, temperature, "geometric").exp()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, F.softmax(log_probs.mean(0), dim=-1))


def test_arithmetic_mean_of_member_distributions():
    members = torch.tensor([[[0.0, 0.0]], [[math.log(3.0), 0.0]]])
    got = teacher_log_probs(members, 1.0, "arithmetic").exp()
    torch.testing.assert_close(got, torch.tensor([[(0.5 + 0.75) / 2, (0.5 + 0.25) / 2]]))


def test_logit_squared_error_value_and_bad_rule():
    assert logit_squared_error(
        torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    ).item() == pytest.approx(2.5)
    with pytest.raises(KDistillError, match="unknown ensemble rule"):
        teacher_log_probs(torch.zeros(1, 1, 2), 1.0, "median")
