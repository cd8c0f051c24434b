"""GAN Compression's terms and the adversarial losses against hand computations."""

import math

import pytest
import torch
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.adversarial import discriminator_loss, generator_loss
from kdistill.losses.base import FeatureRequest, TermContext
from kdistill.losses.generators import GeneratorFeatureLoss, ReconstructionLoss
from kdistill.losses.registry import build_term


def _context(student, teacher, features=None):
    return TermContext(
        inputs=torch.zeros(student.shape[0], 2),
        labels=torch.zeros(student.shape[0], dtype=torch.long),
        student_logits=student,
        teacher_member_logits=teacher[None],
        student=nn.Identity(),
        teacher=nn.Identity(),
        features=features or {},
    )


def test_reconstruction_is_the_mean_absolute_difference_to_the_teacher_image():
    student = torch.tensor([[[[0.2, 0.5], [1.0, 0.0]]]], requires_grad=True)
    teacher = torch.tensor([[[[0.0, 1.0], [1.0, 0.4]]]])
    loss = ReconstructionLoss()(_context(student, teacher))
    # |0.2| + |-0.5| + 0 + |-0.4| over 4 pixels
    assert loss.item() == pytest.approx((0.2 + 0.5 + 0.0 + 0.4) / 4)
    loss.backward()
    assert student.grad.tolist() == [[[[0.25, -0.25], [0.0, -0.25]]]]


def test_reconstruction_refuses_images_of_another_shape():
    with pytest.raises(KDistillError, match="differ in shape"):
        ReconstructionLoss()(_context(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)))


def test_feature_term_maps_student_channels_by_a_1x1_conv_then_takes_the_mse():
    term = GeneratorFeatureLoss(student="blocks.0", teacher="blocks.0")
    student = torch.stack([torch.ones(2, 2), 2 * torch.ones(2, 2)])[None]  # [1, 2, 2, 2]
    teacher = torch.tensor([[[[1.0, 1.0], [1.0, 2.0]]]])  # [1, 1, 2, 2]
    features = {
        FeatureRequest("student", "blocks.0"): student,
        FeatureRequest("teacher", "blocks.0"): teacher,
    }
    context = _context(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), features)
    term.prepare(context)
    assert isinstance(term.adapter, nn.Conv2d) and term.adapter.kernel_size == (1, 1)
    with torch.no_grad():
        term.adapter.weight.copy_(torch.tensor([3.0, -1.0]).view(1, 2, 1, 1))
        term.adapter.bias.fill_(0.5)
    # mapped = 3 * 1 - 1 * 2 + 0.5 = 1.5 everywhere; differences 0.5, 0.5, 0.5, -0.5
    loss = term(context)
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    # d/db of mean((1.5 - t)^2) = 2 * mean(1.5 - t) = 2 * (0.5 * 3 - 0.5) / 4
    assert term.adapter.bias.grad.item() == pytest.approx(0.5)


def test_terms_are_registered_with_their_options():
    assert isinstance(build_term("reconstruction", 10.0), ReconstructionLoss)
    term = build_term("generator_features", 2.0, student="blocks.1", teacher="blocks.1")
    assert term.weight == 2.0
    assert term.reads() == [
        FeatureRequest("student", "blocks.1"),
        FeatureRequest("teacher", "blocks.1"),
    ]


def test_non_saturating_losses_match_their_formulas():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0, -1.0])
    expected_d = (math.log(2) + math.log(1 + math.exp(-2))) / 2 + (
        math.log(2) + math.log(1 + math.exp(-1))
    ) / 2
    assert discriminator_loss(real, fake).item() == pytest.approx(expected_d)
    expected_g = (math.log(2) + math.log(1 + math.exp(1))) / 2  # -log sigmoid(s)
    assert generator_loss(fake).item() == pytest.approx(expected_g)


def test_hinge_losses_match_their_formulas():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # real: relu(1 - 2) = 0, relu(1 - 0.5) = 0.5; fake: relu(1 - 2) = 0, relu(1 + 0) = 1
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(0.25 + 0.5)
    assert generator_loss(fake, "hinge").item() == pytest.approx(1.0)


def test_unknown_adversarial_loss_names_the_config_key():
    with pytest.raises(KDistillError, match="gan.loss"):
        generator_loss(torch.zeros(2), "least-squares")
