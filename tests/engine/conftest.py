import numpy as np
import pytest


@pytest.fixture(scope="session")
def small_mnist_npz(tmp_path_factory, mnist):
    """3,000 real MNIST training and 1,000 test images as an npz data set (``npz:PATH``)."""
    path = tmp_path_factory.mktemp("data") / "mnist-small.npz"
    np.savez(
        path,
        x_train=mnist.train.images[:3000].numpy(),
        y_train=mnist.train.labels[:3000].numpy(),
        x_test=mnist.test.images[:1000].numpy(),
        y_test=mnist.test.labels[:1000].numpy(),
    )
    return path
