"""Data room: in-memory data sets (MNIST, Fashion-MNIST, IDX, npz), batches and subsets."""

from kdistill.data.batches import (
    BalancedBatchLoader,
    Batch,
    BatchLoader,
    offset_codes,
    offset_grid,
    random_shift,
    shift_images,
)
from kdistill.data.dataset import DataSet, InputEncoding, Split
from kdistill.data.loaders import load_dataset
from kdistill.data.mnist import mnist_wheel_cache_dir
from kdistill.data.prepare import TrainingData, input_encoding, prepare_data
from kdistill.data.subsets import carve_validation, keep_classes, take_fraction

__all__ = [
    "BalancedBatchLoader",
    "Batch",
    "BatchLoader",
    "DataSet",
    "InputEncoding",
    "Split",
    "TrainingData",
    "carve_validation",
    "input_encoding",
    "keep_classes",
    "load_dataset",
    "mnist_wheel_cache_dir",
    "offset_codes",
    "offset_grid",
    "prepare_data",
    "random_shift",
    "shift_images",
    "take_fraction",
]
