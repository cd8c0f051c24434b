"""Logged figures mean what the README says: soft-target terms log T^2 KL (which falls to 0)
without changing a single gradient; RKD's mean distance ignores coinciding embeddings."""

import torch

from kdistill.losses.base import TermContext
from kdistill.losses.logits import SoftTargetLoss, soft_target_cross_entropy, teacher_log_probs
from kdistill.losses.relations import normalised_pair_distances
from kdistill.methods.mutual import mutual_kl


def _context(student, teacher):
    return TermContext(
        inputs=torch.zeros(len(student), 1),
        labels=torch.zeros(len(student), dtype=torch.long),
        student_logits=student,
        teacher_member_logits=teacher,
        student=None,
        teacher=None,
        features={},
        has_labels=True,
    )


def test_soft_targets_log_the_kl_which_is_zero_when_the_student_matches_the_teacher():
    torch.manual_seed(0)
    teacher = torch.randn(1, 8, 10) * 5
    term = SoftTargetLoss(temperature=20.0)
    matched = term(_context(teacher[0].clone(), teacher))
    assert abs(float(matched)) < 1e-3  # the cross-entropy would read ~T^2 H(p) ~ 900 here
    other = torch.randn(8, 10)
    logged = term(_context(other, teacher))
    cross_entropy = soft_target_cross_entropy(other, teacher_log_probs(teacher, 20.0), 20.0)
    assert 0 < float(logged) < float(cross_entropy)
    torch.testing.assert_close(logged, mutual_kl(other, teacher, 20.0), rtol=1e-4, atol=1e-4)


def test_logging_the_kl_leaves_every_gradient_bit_identical():
    torch.manual_seed(1)
    teacher = torch.randn(2, 16, 10)
    student = torch.randn(16, 10, requires_grad=True)
    SoftTargetLoss(0.7, temperature=4.0)(_context(student, teacher)).mul(0.7).backward()
    via_kl = student.grad.clone()
    student.grad = None
    targets = teacher_log_probs(teacher, 4.0)
    soft_target_cross_entropy(student, targets, 4.0).mul(0.7).backward()
    assert torch.equal(student.grad, via_kl)


def test_rkd_mean_distance_ignores_coinciding_embeddings():
    embeddings = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]])
    psi = normalised_pair_distances(embeddings)
    # Nonzero distances are all 5: psi is 1 for them, 0 for the coinciding pair.
    nonzero = psi[psi > 1e-3]
    torch.testing.assert_close(nonzero, torch.ones_like(nonzero))
