import pytest

from tests.conftest import write_mnist_npz


@pytest.fixture(scope="session")
def small_mnist_npz(tmp_path_factory, mnist):
    """3,000 real MNIST training and 1,000 test images as an npz data set (``npz:PATH``)."""
    return write_mnist_npz(tmp_path_factory.mktemp("data") / "mnist-small.npz", mnist, 3000, 1000)
