"""Data room: in-memory data sets (MNIST, Fashion-MNIST, IDX, npz), batches and subsets."""

from kdistill.data.batches import Batch, BatchLoader, random_shift
from kdistill.data.dataset import DataSet, Split, check_num_classes
from kdistill.data.loaders import load_dataset
from kdistill.data.mnist import mnist_wheel_cache_dir
from kdistill.data.subsets import carve_validation, keep_classes, take_fraction

__all__ = [
    "Batch",
    "BatchLoader",
    "DataSet",
    "Split",
    "carve_validation",
    "check_num_classes",
    "keep_classes",
    "load_dataset",
    "mnist_wheel_cache_dir",
    "random_shift",
    "take_fraction",
]
