"""The generation task's metrics against hand computations: matrix square root, Frechet
distance, precision/recall, accuracy of generated samples; its meter and probe."""

import pytest
import torch
from torch import nn

from kdistill.data import Batch, InputEncoding, Split
from kdistill.errors import KDistillError
from kdistill.tasks import create_task
from kdistill.tasks.generation import (
    AdversarialOutputs,
    FeatureSpace,
    GenerationTask,
    frechet_distance,
    precision_recall,
    psd_matrix_sqrt,
)


def test_matrix_square_root_of_a_hand_2x2_case():
    # [[2, 1], [1, 2]]^2 = [[5, 4], [4, 5]]
    root = psd_matrix_sqrt(torch.tensor([[5.0, 4.0], [4.0, 5.0]], dtype=torch.float64))
    assert torch.allclose(root, torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64))


def test_frechet_distance_of_hand_2x2_cases():
    identity = torch.eye(2)
    # ||(1, 2)||^2 + tr(I) + tr(diag(4, 9)) - 2 tr(diag(2, 3)) = 5 + 2 + 13 - 10
    assert frechet_distance(
        torch.zeros(2), identity, torch.tensor([1.0, 2.0]), torch.diag(torch.tensor([4.0, 9.0]))
    ) == pytest.approx(10.0)
    # Same means, C_a = [[5, 4], [4, 5]], C_b = I: 10 + 2 - 2 tr([[2, 1], [1, 2]]) = 4
    cov = torch.tensor([[5.0, 4.0], [4.0, 5.0]])
    assert frechet_distance(torch.zeros(2), cov, torch.zeros(2), identity) == pytest.approx(4.0)
    assert frechet_distance(torch.ones(2), cov, torch.ones(2), cov) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_is_symmetric_for_non_commuting_covariances():
    a = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    b = torch.tensor([[1.0, -0.3], [-0.3, 3.0]])
    mean_a, mean_b = torch.tensor([0.1, 0.2]), torch.tensor([-1.0, 0.5])
    assert frechet_distance(mean_a, a, mean_b, b) == pytest.approx(
        frechet_distance(mean_b, b, mean_a, a)
    )


def test_precision_recall_of_points_on_a_line():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])  # k = 1: every real radius is 1
    fake = torch.tensor([[0.5], [10.0]])  # radius of each: 9.5
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == 0.5  # 0.5 is inside a real ball, 10 is not
    assert recall == 1.0  # every real point is within 9.5 of 0.5


class _PixelGenerator(nn.Module):
    """Class 1 lights pixel (0, 0) when the first noise value is positive; class 0 never."""

    noise_size = 2
    num_classes = 2

    def forward(self, noise, labels):
        images = torch.zeros(len(labels), 1, 28, 28)
        images[:, 0, 0, 0] = ((labels == 1) & (noise[:, 0] > 0)).float()
        return images


def _pixel_classifier() -> nn.Module:
    # logits [0.5 - x, x - 0.5] with x = pixel (0, 0): predicts class 1 iff it is lit.
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
    with torch.no_grad():
        classifier[1].weight.zero_()
        classifier[1].weight[:, 0] = torch.tensor([-1.0, 1.0])
        classifier[1].bias.copy_(torch.tensor([0.5, -0.5]))
    return classifier


def test_accuracy_of_generated_samples_counts_predictions_unlike_the_asked_class():
    task = GenerationTask().configure(
        FeatureSpace(_pixel_classifier(), InputEncoding(divisor=255.0), "1", "input"),
        samples=40,
        seed=7,
        nearest_k=3,
    )
    real = Split(torch.randint(0, 255, (60, 1, 28, 28), dtype=torch.uint8), torch.arange(60) % 2)
    evaluation = task.evaluate(_PixelGenerator(), real, 16, torch.device("cpu"))
    noise = torch.randn(40, 2, generator=torch.Generator().manual_seed(7))
    labels = torch.arange(40) % 2
    expected = int(((labels == 1) & (noise[:, 0] <= 0)).sum())  # class 1 left dark
    assert 0 < expected < 20
    assert (evaluation.errors, evaluation.total) == (expected, 40)
    summary = evaluation.summary()
    assert summary["accuracy"] == pytest.approx(1 - expected / 40)
    assert summary["frechet_distance"] > 0


def test_meter_counts_when_the_discriminator_is_right():
    meter = create_task("generation").meter(torch.device("cpu"))
    batch = Batch(torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), torch.arange(4))
    meter.update(
        AdversarialOutputs(torch.tensor([1.0, -1, 2, 3]), torch.tensor([-1.0, 1, 1, -2])), batch
    )
    assert meter.summary() == {
        "discriminator_real_accuracy": 0.75,
        "discriminator_fake_accuracy": 0.5,
    }


def test_probe_names_a_model_that_is_not_a_conditional_generator():
    split = Split(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(KDistillError, match="noise_size and num_classes"):
        GenerationTask().probe(nn.Linear(3, 3), split, "generator mlp")
    assert GenerationTask().probe(_PixelGenerator(), split, "generator") == 2


def test_evaluation_without_a_classifier_names_the_config_key():
    split = Split(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(KDistillError, match="gan.classifier"):
        GenerationTask().evaluate(_PixelGenerator(), split, 2, torch.device("cpu"))


def test_probe_gives_a_generator_that_fails_on_noise_and_a_class_the_one_line_error():
    class _WrongNoise(_PixelGenerator):
        noise_size = 5  # claims 5 noise values but reads a [B, 2] weight

        def forward(self, noise, labels):
            return noise @ torch.zeros(2, 784)

    split = Split(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(
        KDistillError, match=r"rejects noise and class ids of shapes \[1, 5\] and \[1\]"
    ):
        GenerationTask().probe(_WrongNoise(), split, "generator odd")
