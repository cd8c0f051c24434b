"""The conditional generator and discriminator: shapes, paths, and the student's MACs."""

import torch
from torch import nn

from kdistill.models import create_model
from kdistill.models.gan import ConditionalGenerator, count_macs


def test_generator_makes_28x28_images_in_0_1_with_feature_paths():
    generator = create_model("cgan-generator", channels=8, noise_size=16)
    images = generator(torch.randn(5, 16), torch.arange(5))
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1
    paths = dict(generator.named_modules())
    assert {"project", "blocks.0", "blocks.1", "head"} <= set(paths)


def test_discriminator_scores_each_image_given_its_class():
    discriminator = create_model("cgan-discriminator", channels=4)
    images = torch.rand(3, 1, 28, 28)
    scores = discriminator(images, torch.tensor([0, 1, 2]))
    assert scores.shape == (3,)
    # The class enters the score: another class changes it.
    assert not torch.allclose(scores, discriminator(images, torch.tensor([3, 4, 5])))


def test_count_macs_of_a_linear_layer_and_a_convolution_by_hand():
    linear = nn.Linear(10, 7)
    assert count_macs(linear, torch.zeros(1, 10)) == 70
    conv = nn.Conv2d(2, 3, kernel_size=3, padding=1)
    assert count_macs(conv, torch.zeros(1, 2, 5, 5)) == 2 * 3 * 9 * 25


def test_quarter_width_student_has_over_10x_fewer_macs():
    teacher = ConditionalGenerator(channels=32)
    student = ConditionalGenerator(channels=8)
    noise, labels = torch.zeros(1, 32), torch.zeros(1, dtype=torch.long)
    teacher_macs, student_macs = (
        count_macs(teacher, noise, labels),
        count_macs(student, noise, labels),
    )
    # The transposed convolutions by hand: in * out * 4 * 4 * input positions.
    conv_macs = 128 * 64 * 16 * 7 * 7 + 64 * 32 * 16 * 14 * 14
    linear_macs = (32 + 16) * 128 * 7 * 7
    head_macs = 32 * 1 * 9 * 28 * 28
    assert teacher_macs == conv_macs + linear_macs + head_macs
    assert teacher_macs / student_macs >= 10
