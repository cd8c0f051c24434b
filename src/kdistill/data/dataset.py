"""In-memory data set types, input validation and the data fingerprint.

Everything lives in memory as uint8 images and int64 labels: MNIST-sized sets are ~50 MB, so
slicing tensors beats any per-sample Dataset/collate machinery by orders of magnitude.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from kdistill.errors import KDistillError

__all__ = [
    "DataSet",
    "Split",
    "build_dataset",
    "check_num_classes",
    "compute_fingerprint",
    "images_to_uint8",
    "labels_to_int64",
]

# Labels far beyond any real class count are almost always garbage (e.g. an image array passed
# as labels); refuse them instead of building a model with a billion outputs.
MAX_LABEL = 65_535


@dataclass(frozen=True)
class Split:
    """One split of a data set: uint8 images [N, C, H, W] and int64 labels [N], in memory."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise KDistillError(
                f"Split images must be a uint8 tensor [N, C, H, W], got {self.images.dtype} "
                f"with shape {list(self.images.shape)}: convert with images_to_uint8()"
            )
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise KDistillError(
                f"Split labels must be an int64 tensor [N], got {self.labels.dtype} with shape "
                f"{list(self.labels.shape)}: convert with labels.long()"
            )
        if self.images.shape[0] != self.labels.shape[0]:
            raise KDistillError(
                f"Split has {self.images.shape[0]} images but {self.labels.shape[0]} labels: "
                "give one label per image"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> Split:
        """Return the examples at ``indices`` (int64 positions or a bool mask), in that order."""
        return Split(images=self.images[indices], labels=self.labels[indices])

    def class_counts(self, num_classes: int | None = None) -> torch.Tensor:
        """Number of examples of each class, as int64 [num_classes]."""
        minlength = num_classes if num_classes is not None else 0
        return torch.bincount(self.labels, minlength=minlength)


@dataclass(frozen=True)
class DataSet:
    """A loaded data set: train/test (and optionally validation) splits plus metadata.

    ``fingerprint`` is a sha256 hex digest over the train and test tensors, used elsewhere as a
    cache key (e.g. for teacher logits). ``validation`` is not part of it because it is carved
    out of train later, deterministically by seed.
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    fingerprint: str
    validation: Split | None = None


def compute_fingerprint(train: Split, test: Split) -> str:
    """sha256 hex over dtype, shape and bytes of train and test images and labels."""
    digest = hashlib.sha256(b"kdistill-data-v1")
    for tensor in (train.images, train.labels, test.images, test.labels):
        array = tensor.detach().cpu().contiguous().numpy()
        if array.dtype.itemsize > 1:
            # Pin byte order so the key is the same on any machine.
            array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        digest.update(f"{array.dtype.str}{list(array.shape)};".encode())
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()


def images_to_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """Convert an image array to uint8 [N, C, H, W].

    Accepts [N, H, W] or [N, C, H, W]; uint8, integers within 0..255, or floats within [0, 1]
    (scaled by 255 and rounded). ``where`` names the file/array in error messages.
    """
    if array.ndim == 3:
        array = array[:, None, :, :]
    elif array.ndim == 4:
        c, w = array.shape[1], array.shape[3]
        if c not in (1, 2, 3, 4) and w in (1, 3, 4):
            raise KDistillError(
                f"{where} has shape {list(array.shape)}, which looks channels-last: store "
                "[N, C, H, W] (e.g. x.transpose(0, 3, 1, 2))"
            )
    else:
        raise KDistillError(
            f"{where} has shape {list(array.shape)}, expected [N, H, W] or [N, C, H, W]: "
            "reshape flat images to [N, H, W]"
        )
    if array.shape[0] == 0:
        raise KDistillError(f"{where} is empty (0 images): give at least one example")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.integer):
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise KDistillError(
                f"{where} has integer pixel values in [{lo}, {hi}], expected 0..255: "
                "rescale to 0..255 or store floats in [0, 1]"
            )
        return np.ascontiguousarray(array.astype(np.uint8))
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise KDistillError(f"{where} contains NaN or infinite pixels: clean the data")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            raise KDistillError(
                f"{where} has float pixel values in [{lo:g}, {hi:g}], expected [0, 1]: "
                "divide by 255 or store uint8"
            )
        return np.ascontiguousarray(np.rint(array * 255.0).astype(np.uint8))
    raise KDistillError(
        f"{where} has dtype {array.dtype}, expected uint8 or float in [0, 1]: convert the images"
    )


def labels_to_int64(array: np.ndarray, where: str, *, max_label: int = MAX_LABEL) -> np.ndarray:
    """Check integer class ids [N] within 0..max_label and return them as int64."""
    if array.ndim == 2 and array.shape[1] > 1:
        raise KDistillError(
            f"{where} has shape {list(array.shape)}: labels must be class ids [N], not one-hot "
            "(use y.argmax(1))"
        )
    if array.ndim != 1:
        raise KDistillError(
            f"{where} has shape {list(array.shape)}, expected [N] class ids: flatten the labels"
        )
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise KDistillError(
            f"{where} has dtype {array.dtype}, expected integer class ids: "
            "convert with y.astype('int64')"
        )
    if array.shape[0] == 0:
        raise KDistillError(f"{where} is empty (0 labels): give at least one example")
    lo, hi = int(array.min()), int(array.max())
    if lo < 0:
        raise KDistillError(
            f"{where} contains negative label {lo}: class ids must be 0..num_classes-1"
        )
    if hi > max_label:
        raise KDistillError(
            f"{where} contains label {hi} but the largest allowed is {max_label}: "
            "class ids must be 0..num_classes-1"
        )
    return array.astype(np.int64)


def build_dataset(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    source: str,
    max_label: int = MAX_LABEL,
    fingerprint: str | None = None,
) -> DataSet:
    """Validate raw arrays and assemble a DataSet; ``source`` prefixes the array names in errors.

    ``fingerprint`` skips hashing when a cache already holds it.
    """
    splits = {}
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        images = images_to_uint8(np.asarray(x), f"{source}: x_{split}")
        labels = labels_to_int64(np.asarray(y), f"{source}: y_{split}", max_label=max_label)
        if images.shape[0] != labels.shape[0]:
            raise KDistillError(
                f"{source}: x_{split} has {images.shape[0]} images but y_{split} has "
                f"{labels.shape[0]} labels: give one label per image"
            )
        splits[split] = Split(torch.from_numpy(images), torch.from_numpy(labels))
    train, test = splits["train"], splits["test"]
    if train.images.shape[1:] != test.images.shape[1:]:
        raise KDistillError(
            f"{source}: train images are {list(train.images.shape[1:])} but test images are "
            f"{list(test.images.shape[1:])}: both splits need the same [C, H, W]"
        )
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    missing = sorted(set(range(num_classes)) - set(train.labels.unique().tolist()))
    if missing:
        # Often 1-based labels (class 0 unused); legal, but the model will waste an output.
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        warnings.warn(
            f"{source}: classes {shown} never occur in the training labels "
            f"(num_classes={num_classes}); are labels 1-based?",
            stacklevel=3,
        )
    if fingerprint is None:
        fingerprint = compute_fingerprint(train, test)
    return DataSet(
        name=name, train=train, test=test, num_classes=num_classes, fingerprint=fingerprint
    )


def check_num_classes(dataset: DataSet, model_outputs: int) -> None:
    """Raise KDistillError when the model has fewer outputs than the data set has classes."""
    if model_outputs < dataset.num_classes:
        raise KDistillError(
            f"data set {dataset.name} has {dataset.num_classes} classes but the model outputs "
            f"{model_outputs}: set model.kwargs.num_classes ≥ {dataset.num_classes}"
        )
