"""Class groups from the covariance of the generalist's predictions, without labels."""

import torch

from kdistill.methods.specialists import (
    class_groups,
    confusion_inside_groups,
    minibatch_kmeans,
    prediction_covariance,
)

BLOCKS = [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]


def _block_covariance() -> torch.Tensor:
    """12 classes predicted together in three interleaved blocks of four."""
    torch.manual_seed(0)
    covariance = 0.002 * torch.rand(12, 12)
    covariance = (covariance + covariance.T) / 2
    for block in BLOCKS:
        covariance[torch.tensor(block)[:, None], torch.tensor(block)] += 0.05
    covariance += torch.diag(0.1 + 0.1 * torch.rand(12))
    return covariance


def test_prediction_covariance_matches_numpy():
    import numpy as np

    probabilities = torch.softmax(torch.randn(50, 6), dim=1)
    expected = np.cov(probabilities.numpy(), rowvar=False)
    assert torch.allclose(prediction_covariance(probabilities), torch.tensor(expected).float())


def test_kmeans_on_the_columns_recovers_the_blocks_of_classes_predicted_together():
    covariance = _block_covariance()
    for normalize in (True, False):
        disjoint = class_groups(covariance, 3, classes_per_group=None, normalize=normalize)
        assert sorted(disjoint) == sorted(BLOCKS)
        sized = class_groups(covariance, 3, classes_per_group=4, overlap=False, normalize=normalize)
        assert sorted(sized) == sorted(BLOCKS)
    overlapping = class_groups(covariance, 3, classes_per_group=4, overlap=True)
    assert sorted(overlapping) == sorted(BLOCKS)


def test_kmeans_is_deterministic_in_its_seed():
    points = torch.randn(40, 5)
    first = minibatch_kmeans(points, 4, seed=7)
    second = minibatch_kmeans(points, 4, seed=7)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_confusion_inside_groups_counts_the_errors_that_stay_in_the_group():
    confusion = torch.tensor([[5, 3, 1, 0], [2, 5, 0, 0], [0, 0, 5, 4], [0, 1, 0, 5]])
    rows = confusion_inside_groups(confusion, [[0, 1], [2, 3]])
    assert rows[0]["errors"] == 6 and rows[0]["errors_inside"] == 5
    assert rows[1]["errors"] == 5 and rows[1]["errors_inside"] == 4
    assert rows[0]["share_if_uniform"] == round(1 / 3, 4)
