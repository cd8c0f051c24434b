"""In-memory data set types, input validation and the data fingerprint.

Everything lives in memory: images as uint8 ``[N, C, H, W]`` (a quarter of the bytes of
float32), other inputs as float32 ``[N, ...]`` of any shape (tabular ``[N, F]`` included),
labels as int64. MNIST-sized sets are ~50 MB, so slicing tensors beats any per-sample
Dataset/collate machinery by orders of magnitude. How stored inputs become what a model
receives (scaling, normalisation, layout) is the split's :class:`InputEncoding`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kdistill.errors import KDistillError

__all__ = [
    "DataSet",
    "InputEncoding",
    "Split",
    "build_dataset",
    "compute_fingerprint",
    "images_to_uint8",
    "inputs_to_array",
    "labels_to_int64",
]

# Labels far beyond any real class count are almost always garbage (e.g. an image array passed
# as labels); refuse them instead of building a model with a billion outputs.
MAX_LABEL = 65_535


@dataclass(frozen=True, eq=False)
class InputEncoding:
    """How stored inputs become model inputs: ``x / divisor``, then ``(x - mean) / std``, then
    each example reshaped to ``shape``.

    ``divisor`` is 255 for uint8 pixels (so images arrive in [0, 1]) and 1 for float features.
    ``mean`` and ``std`` broadcast against one stored example (``[C, 1, 1]`` per channel, the
    example's own shape per feature); they are computed on the training split or given in the
    config (``data.normalize``). ``shape`` is the per-example shape the model receives
    (``data.input_shape``; ``[-1]`` flattens, as a user MLP on ``[N, 784]`` expects); ``None``
    keeps the stored layout (``[N, 1, 28, 28]`` for MNIST, as torchvision gives it).
    """

    divisor: float = 1.0
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    shape: tuple[int, ...] | None = None

    @property
    def is_plain(self) -> bool:
        """Only scaled: no normalisation, stored layout."""
        return self.mean is None and self.shape is None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InputEncoding) and self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(self.digest())

    def scale(self, stored: torch.Tensor) -> torch.Tensor:
        """Stored values as float32 (divided by ``divisor``), in the stored layout; token ids
        (int64) stay ids."""
        if stored.dtype == torch.int64:
            return stored
        # Divide rather than multiply by 1/255: bit-identical to every run made before.
        values = stored.float()
        return values.div_(self.divisor) if self.divisor != 1.0 else values

    def finish(self, values: torch.Tensor) -> torch.Tensor:
        """Normalise scaled values ``[B, ...]`` and give them the model's layout."""
        if self.mean is not None and self.std is not None:
            values = (values - self.mean.to(values.device)) / self.std.to(values.device)
        if self.shape is not None:
            values = values.reshape(values.shape[0], *self.shape)
        return values

    def encode(self, stored: torch.Tensor) -> torch.Tensor:
        """``finish(scale(stored))``: what a model receives for stored inputs ``[B, ...]``."""
        return self.finish(self.scale(stored))

    def describe(self) -> dict[str, Any]:
        """JSON-able form, saved beside a trained model so evaluation encodes inputs alike."""
        return {
            "divisor": self.divisor,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
            "shape": None if self.shape is None else list(self.shape),
        }

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> InputEncoding:
        def tensor(value: Any) -> torch.Tensor | None:
            return None if value is None else torch.tensor(value, dtype=torch.float32)

        shape = described.get("shape")
        return cls(
            divisor=float(described.get("divisor", 1.0)),
            mean=tensor(described.get("mean")),
            std=tensor(described.get("std")),
            shape=None if shape is None else tuple(int(n) for n in shape),
        )

    def digest(self) -> str:
        """A short digest of the encoding, part of every key of data a model computed."""
        text = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_encoding(inputs: torch.Tensor) -> InputEncoding:
    """Pixels ``/ 255`` for uint8 images, float inputs as they are."""
    return InputEncoding(divisor=255.0 if inputs.dtype == torch.uint8 else 1.0)


@dataclass(frozen=True)
class Split:
    """One split of a data set, in memory: stored ``inputs`` (uint8 images ``[N, C, H, W]``,
    int64 token ids ``[N, tokens]`` padded with the tokenizer's pad id, or float32 ``[N, ...]``),
    int64 ``labels`` ``[N]`` (-100: unlabelled, e.g. extra text in a transfer set; ``[N, ...]``
    for dense tasks: masks, boxes) and the :class:`InputEncoding` that turns
    stored inputs into model inputs (by default pixels ``/ 255``, floats as they are)."""

    inputs: torch.Tensor
    labels: torch.Tensor
    encoding: InputEncoding | None = None

    def __post_init__(self) -> None:
        if self.inputs.dtype == torch.uint8:
            if self.inputs.dim() != 4:
                raise KDistillError(
                    f"Split images must be uint8 [N, C, H, W], got shape "
                    f"{list(self.inputs.shape)}: convert with images_to_uint8()"
                )
        elif self.inputs.dtype == torch.int64:
            if self.inputs.dim() != 2:
                raise KDistillError(
                    f"Split token ids must be int64 [N, tokens], got shape "
                    f"{list(self.inputs.shape)}: pad every text to one length"
                )
        elif self.inputs.dtype != torch.float32 or self.inputs.dim() < 2:
            raise KDistillError(
                f"Split inputs must be uint8 images [N, C, H, W], int64 token ids [N, tokens] "
                f"or float32 [N, ...], got "
                f"{self.inputs.dtype} with shape {list(self.inputs.shape)}: convert with "
                "inputs_to_array()"
            )
        # Dense tasks label each example with a tensor: masks [N, H, W], boxes [N, K, 5].
        if self.labels.dtype != torch.int64 or self.labels.dim() < 1:
            raise KDistillError(
                f"Split labels must be an int64 tensor [N] (or [N, ...] for dense tasks), got "
                f"{self.labels.dtype} with shape {list(self.labels.shape)}: convert with "
                "labels.long()"
            )
        if self.inputs.shape[0] != self.labels.shape[0]:
            raise KDistillError(
                f"Split has {self.inputs.shape[0]} inputs but {self.labels.shape[0]} labels: "
                "give one label per example"
            )
        if self.encoding is None:
            object.__setattr__(self, "encoding", default_encoding(self.inputs))

    @property
    def input_encoding(self) -> InputEncoding:
        assert self.encoding is not None  # set in __post_init__
        return self.encoding

    @property
    def is_images(self) -> bool:
        """uint8 ``[N, C, H, W]`` pixels: the paper's jitter applies."""
        return self.inputs.dtype == torch.uint8

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> Split:
        """Return the examples at ``indices`` (int64 positions or a bool mask), in that order."""
        return Split(self.inputs[indices], self.labels[indices], self.encoding)

    def with_encoding(self, encoding: InputEncoding) -> Split:
        return Split(self.inputs, self.labels, encoding)

    def encoded(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Model inputs of examples ``start:stop`` (all by default)."""
        return self.input_encoding.encode(self.inputs[start:stop])

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
    for tensor in (train.inputs, train.labels, test.inputs, test.labels):
        array = tensor.detach().cpu().contiguous().numpy()
        if array.dtype.itemsize > 1:
            # Pin byte order so the key is the same on any machine.
            array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        digest.update(f"{array.dtype.str}{list(array.shape)};".encode())
        digest.update(np.ascontiguousarray(array).data.cast("B"))
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
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise KDistillError(
                f"{where} has float pixel values in [{low:g}, {high:g}], expected [0, 1]: "
                "divide by 255 or store uint8"
            )
        return np.ascontiguousarray(np.rint(array * 255.0).astype(np.uint8))
    raise KDistillError(
        f"{where} has dtype {array.dtype}, expected uint8 or float in [0, 1]: convert the images"
    )


def inputs_to_array(array: np.ndarray, where: str) -> np.ndarray:
    """Convert stored inputs: images to uint8 ``[N, C, H, W]``, anything else to float32.

    uint8 arrays, and integer arrays of 3 or 4 dimensions, are images (``[N, H, W]`` gains a
    channel axis; values must be 0..255). Float arrays are features and keep their precision
    and sign: ``[N, F]`` tabular, ``[N, H, W]`` (which gains a channel axis, like images) or
    any ``[N, ...]``; they must be finite. Integer ``[N, F]`` arrays are features too.
    """
    if array.ndim < 2:
        raise KDistillError(
            f"{where} has shape {list(array.shape)}, expected [N, ...] with one row per "
            "example: reshape to [N, 1] for a single feature"
        )
    if array.shape[0] == 0:
        raise KDistillError(f"{where} is empty (0 examples): give at least one example")
    is_integer = np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_
    if array.dtype == np.uint8 or (is_integer and array.ndim in (3, 4)):
        return images_to_uint8(array, where)
    if not (is_integer or np.issubdtype(array.dtype, np.floating)):
        raise KDistillError(
            f"{where} has dtype {array.dtype}, expected numbers (uint8 images or float "
            "features): convert with x.astype('float32')"
        )
    values = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(values).all():
        raise KDistillError(f"{where} contains NaN or infinite values: clean the data")
    if values.ndim == 3:
        values = values[:, None, :, :]
    return values


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


def _kind(inputs: torch.Tensor) -> str:
    kind = "uint8" if inputs.dtype == torch.uint8 else "float"
    return f"{kind} {list(inputs.shape[1:])}"


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
        inputs = inputs_to_array(np.asarray(x), f"{source}: x_{split}")
        labels = labels_to_int64(np.asarray(y), f"{source}: y_{split}", max_label=max_label)
        if inputs.shape[0] != labels.shape[0]:
            raise KDistillError(
                f"{source}: x_{split} has {inputs.shape[0]} examples but y_{split} has "
                f"{labels.shape[0]} labels: give one label per example"
            )
        splits[split] = Split(torch.from_numpy(inputs), torch.from_numpy(labels))
    train, test = splits["train"], splits["test"]
    if train.inputs.shape[1:] != test.inputs.shape[1:] or train.inputs.dtype != test.inputs.dtype:
        raise KDistillError(
            f"{source}: x_train is {_kind(train.inputs)} but x_test is {_kind(test.inputs)}: "
            "both splits need the same per-example shape and type"
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
