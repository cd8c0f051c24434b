"""Data sets for the dense tasks by spec: the glyph canvases, or a user's ``.npz``.

* ``canvases-seg`` / ``canvases-det``: :mod:`kdistill.data.canvases` with masks or boxes.
* ``segmentation:FILE.npz``: ``x_train``, ``x_test`` (images ``[N, H, W]`` or
  ``[N, C, H, W]``), ``masks_train``, ``masks_test`` (integer ``[N, H, W]``, 0 = background)
  and optionally ``num_classes`` (default: the largest id + 1).
* ``detection:FILE.npz``: ``x_train``, ``x_test``, ``boxes_train``, ``boxes_test`` (integer
  ``[N, K, 5]`` rows ``(class, x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive, rows of
  class -1 pad) and optionally ``num_classes``.

Nothing is unpickled (``allow_pickle=False``); bad labels are refused with the file and key.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from kdistill.data.canvases import check_boxes, check_masks
from kdistill.data.dataset import DataSet, Split, compute_fingerprint, images_to_uint8
from kdistill.errors import KDistillError

__all__ = ["DENSE_SPECS", "load_dense_npz"]

DENSE_SPECS = ("segmentation", "detection")
_LABEL_KEY = {"segmentation": "masks", "detection": "boxes"}


def load_dense_npz(path: str | Path, kind: str) -> DataSet:
    """A user's segmentation or detection set from an ``.npz`` (see the module docstring)."""
    if kind not in DENSE_SPECS:
        raise KDistillError(
            f"dense data kind must be one of {', '.join(DENSE_SPECS)}, got {kind!r}"
        )
    path = Path(path).expanduser()
    label = _LABEL_KEY[kind]
    keys = ("x_train", "x_test", f"{label}_train", f"{label}_test")
    if not path.is_file():
        raise KDistillError(
            f"{kind} file {path} does not exist: give a .npz with {', '.join(keys)}"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in keys if key not in npz.files]
            if missing:
                raise KDistillError(
                    f"{path} lacks {', '.join(missing)} (it has {', '.join(npz.files) or 'nothing'})"
                    f": a {kind} .npz needs {', '.join(keys)}"
                )
            arrays = {key: npz[key] for key in (*keys, "num_classes") if key in npz.files}
    except KDistillError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise KDistillError(
            f"{path} is not a readable .npz without pickle ({exc}): save plain arrays with numpy.savez"
        ) from None
    images = {
        split: images_to_uint8(arrays[f"x_{split}"], f"{path}: x_{split}")
        for split in ("train", "test")
    }
    if "num_classes" in arrays:
        num_classes = int(arrays["num_classes"])
    elif kind == "segmentation":
        num_classes = int(max(arrays["masks_train"].max(), arrays["masks_test"].max())) + 1
    else:
        num_classes = (
            int(max(arrays["boxes_train"][..., 0].max(), arrays["boxes_test"][..., 0].max())) + 1
        )
    check = check_masks if kind == "segmentation" else check_boxes
    splits = {}
    for split in ("train", "test"):
        key = f"{label}_{split}"
        labels = check(arrays[key], images[split], f"{path}: {key}", num_classes)
        splits[split] = Split(torch.from_numpy(images[split]), torch.from_numpy(labels))
    if splits["train"].inputs.shape[1:] != splits["test"].inputs.shape[1:]:
        raise KDistillError(
            f"{path}: x_train images are {list(splits['train'].inputs.shape[1:])} but x_test "
            f"{list(splits['test'].inputs.shape[1:])}: both splits need the same image size"
        )
    return DataSet(
        name=path.stem,
        train=splits["train"],
        test=splits["test"],
        num_classes=num_classes,
        fingerprint=compute_fingerprint(splits["train"], splits["test"]),
    )
