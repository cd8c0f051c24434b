"""Structured distillation terms (Liu et al. 2019) against hand computations."""

import math

import pytest
import torch

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, TermContext
from kdistill.losses.dense import (
    PairwiseAffinityDistillation,
    PixelwiseDistillation,
    affinity_matrix,
    pairwise_affinity_loss,
    pixelwise_kl,
)
from kdistill.losses.registry import build_term


def test_affinity_matrix_is_the_cosine_of_node_vectors():
    # Two nodes (H=2, W=1) with 2 channels: f1 = (1, 0), f2 = (1, 1).
    features = torch.tensor([[[[1.0], [1.0]], [[0.0], [1.0]]]])
    expected = torch.tensor([[1.0, 1 / math.sqrt(2)], [1 / math.sqrt(2), 1.0]])
    assert torch.allclose(affinity_matrix(features, 1)[0], expected)


def test_affinity_nodes_average_node_size_windows():
    # A 4 x 2 map with node_size 2 has two nodes: the means of its top and bottom halves.
    features = torch.zeros(1, 2, 4, 2)
    features[0, 0, :2] = 3.0  # top node (3, 0)
    features[0, 1, 2:] = 5.0  # bottom node (0, 5): orthogonal to the top one
    assert torch.allclose(affinity_matrix(features, 2)[0], torch.eye(2))


def test_pairwise_loss_is_the_mean_squared_affinity_difference():
    student = torch.tensor([[[[1.0], [1.0]], [[0.0], [1.0]]]])  # a_12 = 1/sqrt(2)
    teacher = torch.tensor([[[[1.0], [0.0]], [[0.0], [1.0]]]])  # a_12 = 0
    # (1/(W'H')^2) * sum_ij: two off-diagonal entries of (1/sqrt 2)^2 = 1/2, over 4 entries.
    assert float(pairwise_affinity_loss(student, teacher, 1)) == pytest.approx(0.25)
    # Channel counts may differ: only the node grid matters.
    wide = torch.cat([teacher, torch.zeros(1, 3, 2, 1)], dim=1)
    assert float(pairwise_affinity_loss(student, wide, 1)) == pytest.approx(0.25)


def test_pixelwise_kl_matches_a_hand_computation():
    # One image, 2 classes, 2 pixels: the student is uniform at both; the teacher is (3/4, 1/4)
    # at pixel one and uniform at pixel two.
    student = torch.zeros(1, 2, 1, 2)
    teacher = torch.zeros(1, 1, 2, 1, 2)
    teacher[0, 0, 0, 0, 0] = math.log(3.0)
    kl_first = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert float(pixelwise_kl(student, teacher)) == pytest.approx(kl_first / 2, rel=1e-5)
    # At T = 2: both softened, the value scaled by T^2.
    p = torch.softmax(torch.tensor([math.log(3.0), 0.0]) / 2, dim=0)
    expected = 4 * float((p * (p / 0.5).log()).sum()) / 2
    assert float(pixelwise_kl(student, teacher, 2.0)) == pytest.approx(expected, rel=1e-5)


def _context(student_logits, teacher_logits, features=None):
    return TermContext(
        inputs=torch.zeros(1),
        labels=torch.zeros(1, dtype=torch.long),
        student_logits=student_logits,
        teacher_member_logits=teacher_logits,
        student=torch.nn.Identity(),
        features=features or {},
    )


def test_terms_are_built_by_name_and_read_their_module_paths():
    term = build_term("pairwise", 1.0, student="decode4", teacher="decode4", node_size=2)
    assert isinstance(term, PairwiseAffinityDistillation)
    assert term.reads() == [
        FeatureRequest("student", "decode4"),
        FeatureRequest("teacher", "decode4"),
    ]
    assert isinstance(build_term("pixel_kl", 10.0), PixelwiseDistillation)
    assert PixelwiseDistillation.needs_live_teacher


def test_pairwise_refuses_maps_at_different_strides_naming_the_paths():
    term = PairwiseAffinityDistillation("decode4", "decode8")
    features = {
        FeatureRequest("student", "decode4"): torch.rand(2, 4, 16, 16),
        FeatureRequest("teacher", "decode8"): torch.rand(2, 8, 8, 8),
    }
    with pytest.raises(
        KDistillError, match="'decode4' outputs a \\[16, 16\\] map and teacher module 'decode8'"
    ):
        term(_context(torch.zeros(2, 3, 4, 4), None, features))


def test_pixel_kl_refuses_classification_logits_and_different_class_counts():
    term = PixelwiseDistillation()
    with pytest.raises(KDistillError, match="dense logits"):
        term(_context(torch.zeros(2, 3), torch.zeros(1, 2, 3)))
    with pytest.raises(KDistillError, match="teacher's logits are \\[2, 5, 4, 4\\]"):
        term(_context(torch.zeros(2, 3, 4, 4), torch.zeros(1, 2, 5, 4, 4)))


def test_pixel_kl_gradient_is_the_softmax_difference():
    # dKL/dz_s at T = 1 is (q - p) per pixel, divided by the number of pixels (the mean).
    student = torch.randn(1, 3, 2, 2, requires_grad=True)
    teacher = torch.randn(1, 1, 3, 2, 2)
    pixelwise_kl(student, teacher).backward()
    expected = (torch.softmax(student.detach(), 1) - torch.softmax(teacher[0], 1)) / 4
    assert torch.allclose(student.grad, expected, atol=1e-6)
