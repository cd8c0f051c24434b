"""Cache of converted data sets: one uncompressed .npz per data set under <cache>/datasets/.

Uncompressed because loading must be fast (< 1 s for MNIST) and the payload is uint8 pixels
that compress poorly relative to the decode cost. Written atomically so that a crash or two
processes racing never leave a half-written file under the final name.
"""

from __future__ import annotations

import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdistill.data.dataset import DataSet, Split
from kdistill.files import atomic_write

__all__ = ["load_cached", "save_cached"]

CACHE_FORMAT = 1


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # The keys are array names; typed Any so that mypy does not match them to savez's
    # ``allow_pickle: bool`` keyword.
    named: dict[str, Any] = arrays
    atomic_write(path, lambda handle: np.savez(handle, **named))


def save_cached(path: Path, dataset: DataSet, *, source: str = "") -> None:
    """Write ``dataset`` (train/test only) to ``path``; a failure only warns, loading goes on.

    ``source`` is an opaque signature of the original files; load_cached() rejects the cache
    when it differs, so edited source files are picked up.
    """
    arrays = {
        "format": np.array(CACHE_FORMAT, dtype=np.int64),
        "name": np.array(dataset.name),
        "source": np.array(source),
        "fingerprint": np.array(dataset.fingerprint),
        "num_classes": np.array(dataset.num_classes, dtype=np.int64),
        "train_images": dataset.train.inputs.numpy(),
        "train_labels": dataset.train.labels.numpy(),
        "test_images": dataset.test.inputs.numpy(),
        "test_labels": dataset.test.labels.numpy(),
    }
    try:
        _atomic_savez(path, arrays)
    except OSError as exc:
        warnings.warn(
            f"could not write data cache {path} ({exc.strerror or exc}); the next load will "
            "convert again: set KDISTILL_CACHE to a writable directory",
            stacklevel=3,
        )


def _check_split(data: dict[str, np.ndarray], split: str, image_shape: tuple[int, ...]) -> Split:
    images, labels = data[f"{split}_images"], data[f"{split}_labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != image_shape:
        raise ValueError(f"{split}_images is {images.dtype} {list(images.shape)}")
    if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
        raise ValueError(f"{split}_labels is {labels.dtype} {list(labels.shape)}")
    return Split(torch.from_numpy(images), torch.from_numpy(labels))


def load_cached(
    path: Path,
    *,
    source: str = "",
    image_shape: tuple[int, ...],
    sizes: tuple[int, int] | None = None,
) -> DataSet | None:
    """Return the cached DataSet, or None when absent, stale or corrupt (corrupt also warns).

    ``image_shape`` is the expected [C, H, W] and ``sizes`` the expected (train, test) lengths.
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            # Reading every member also checks each one's zip CRC, so bit rot is caught here.
            data = {key: npz[key] for key in npz.files}
        if int(data["format"]) != CACHE_FORMAT or str(data["source"]) != source:
            return None
        train = _check_split(data, "train", image_shape)
        test = _check_split(data, "test", image_shape)
        if sizes is not None and (len(train), len(test)) != sizes:
            raise ValueError(f"split sizes are {(len(train), len(test))}, expected {sizes}")
        fingerprint = str(data["fingerprint"])
        if len(fingerprint) != 64:
            raise ValueError(f"fingerprint {fingerprint!r} is not a sha256 hex digest")
        return DataSet(
            name=str(data["name"]),
            train=train,
            test=test,
            num_classes=int(data["num_classes"]),
            fingerprint=fingerprint,
        )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        warnings.warn(
            f"data cache {path} is unreadable or corrupt ({exc}); rebuilding it", stacklevel=3
        )
        return None
