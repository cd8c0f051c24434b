"""Canvases of real glyphs for dense tasks: MNIST digits and Fashion-MNIST items pasted on a
blank canvas, with exact per-pixel masks and boxes taken from the glyph pixels.

No detection or segmentation set ships offline, so this builds one from real images: each
canvas holds 1 to ``max_objects`` glyphs, each cropped to its own pixels, rescaled to a random
size and pasted at a random place (later glyphs occlude earlier ones; a placement that would
hide too much of an earlier glyph is redrawn, so objects overlap but stay visible). Classes:
digits 0-9 are classes 0-9, Fashion-MNIST items 0-9 are classes 10-19.

* Segmentation labels: int64 masks ``[N, H, W]``, 0 for background and ``class + 1`` for an
  object's visible pixels (21 classes).
* Detection labels: int64 ``[N, max_objects, 5]`` rows ``(class, x0, y0, x1, y1)`` of each
  object's visible pixels (``x1``, ``y1`` exclusive), padded with rows of ``-1``; a fixed
  size per canvas, so :class:`~kdistill.data.Split` and the batch loader slice them unchanged.

Training canvases use only training images and test canvases only test images; the canvases
are a function of the seed and sizes alone, built once and cached with a sha256 of the arrays.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kdistill.data.dataset import DataSet, Split, compute_fingerprint
from kdistill.errors import KDistillError
from kdistill.files import atomic_write
from kdistill.files import cache_dir as default_cache_dir

__all__ = [
    "CANVAS_SIZES",
    "CanvasSettings",
    "Canvases",
    "canvas_dataset",
    "check_boxes",
    "check_masks",
    "draw_canvases",
    "load_canvases",
]

CANVAS_SIZES = (4000, 1000)
"""(train, test) canvases of the registered ``canvases-seg`` / ``canvases-det``."""
GLYPH_CLASSES = 20
INK = 26
"""A pixel belongs to a glyph when its value is at least this (10% of 255) after rescaling."""
_FORMAT = "glyph-canvases-v1"


@dataclass(frozen=True)
class CanvasSettings:
    """How canvases are drawn: ``size`` x ``size`` pixels, ``1..max_objects`` glyphs whose
    longer side is ``min_scale..max_scale`` pixels; a new glyph may cover at most
    ``max_hidden`` of an earlier glyph's pixels."""

    size: int = 64
    max_objects: int = 5
    min_scale: int = 14
    max_scale: int = 30
    max_hidden: float = 0.4
    seed: int = 0

    def describe(self) -> str:
        return (
            f"size={self.size},objects={self.max_objects},scale={self.min_scale}-"
            f"{self.max_scale},hidden={self.max_hidden},seed={self.seed}"
        )


@dataclass(frozen=True)
class Canvases:
    """Images uint8 ``[N, 1, H, W]``, masks int64 ``[N, H, W]`` (0 = background, class + 1)
    and boxes int64 ``[N, K, 5]`` (class, x0, y0, x1, y1; class -1 pads)."""

    images: torch.Tensor
    masks: torch.Tensor
    boxes: torch.Tensor


def _glyph_pool(digits: Split, items: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """All glyphs of one split with their canvas class (items shifted by 10)."""
    return torch.cat([digits.inputs[:, 0], items.inputs[:, 0]]), torch.cat(
        [digits.labels, items.labels + 10]
    )


def _crop(glyph: torch.Tensor) -> torch.Tensor:
    """The glyph cut to the rows and columns that hold ink."""
    rows = (glyph >= INK).any(dim=1).nonzero()
    cols = (glyph >= INK).any(dim=0).nonzero()
    if len(rows) == 0:
        return glyph
    return glyph[int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1]


def _rescale(glyph: torch.Tensor, longer: int) -> torch.Tensor:
    height, width = glyph.shape
    factor = longer / max(height, width)
    shape = (max(1, round(height * factor)), max(1, round(width * factor)))
    scaled = F.interpolate(
        glyph[None, None].float(), size=shape, mode="bilinear", antialias=True, align_corners=False
    )[0, 0]
    return scaled.round().clamp(0, 255).to(torch.uint8)


def draw_canvases(
    glyphs: torch.Tensor,
    classes: torch.Tensor,
    count: int,
    settings: CanvasSettings,
    generator: torch.Generator,
) -> Canvases:
    """``count`` canvases from ``glyphs`` (uint8 ``[G, h, w]``) of ``classes`` ``[G]``."""
    size = settings.size
    images = torch.zeros(count, 1, size, size, dtype=torch.uint8)
    masks = torch.zeros(count, size, size, dtype=torch.int64)
    boxes = torch.full((count, settings.max_objects, 5), -1, dtype=torch.int64)
    for index in range(count):
        objects = int(torch.randint(1, settings.max_objects + 1, (1,), generator=generator))
        owner = torch.full((size, size), -1, dtype=torch.int64)  # which object a pixel shows
        placed: list[int] = []
        for _ in range(objects):
            for _attempt in range(10):
                pick = int(torch.randint(len(glyphs), (1,), generator=generator))
                longer = int(
                    torch.randint(
                        settings.min_scale, settings.max_scale + 1, (1,), generator=generator
                    )
                )
                glyph = _rescale(_crop(glyphs[pick]), longer)
                height, width = glyph.shape
                top = int(torch.randint(size - height + 1, (1,), generator=generator))
                left = int(torch.randint(size - width + 1, (1,), generator=generator))
                ink = glyph >= INK
                if not bool(ink.any()):
                    continue
                window = owner[top : top + height, left : left + width]
                if not _keeps_earlier_visible(owner, window, ink, placed, settings.max_hidden):
                    continue
                slot = len(placed)
                window[ink] = slot
                image_window = images[index, 0, top : top + height, left : left + width]
                image_window[ink] = glyph[ink]
                placed.append(int(classes[pick]))
                break
        for slot, glyph_class in enumerate(placed):
            visible = owner == slot
            ys, xs = visible.nonzero(as_tuple=True)
            boxes[index, slot] = torch.tensor(
                [glyph_class, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
            )
            masks[index][visible] = glyph_class + 1
    return Canvases(images, masks, boxes)


def _keeps_earlier_visible(
    owner: torch.Tensor,
    window: torch.Tensor,
    ink: torch.Tensor,
    placed: list[int],
    max_hidden: float,
) -> bool:
    """Whether pasting ``ink`` over ``window`` leaves every earlier glyph mostly visible."""
    covered = window[ink]
    for slot in covered.unique().tolist():
        if slot < 0:
            continue
        before = int((owner == slot).sum())
        if int((covered == slot).sum()) > max_hidden * before:
            return False
    return True


def _digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(_FORMAT.encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}{list(array.shape)};".encode())
        digest.update(array.data.cast("B"))
    return digest.hexdigest()


def _read_cache(path: Path, source: str) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
        if str(data.pop("source")) != source:
            return None
        recorded = str(data.pop("sha256"))
        if _digest(data) != recorded:
            raise ValueError("sha256 of the arrays differs from the one recorded")
        return data
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        warnings.warn(
            f"canvas cache {path} is unreadable or corrupt ({exc}); rebuilding it", stacklevel=3
        )
        return None


def load_canvases(
    digits: DataSet,
    items: DataSet,
    *,
    sizes: tuple[int, int] = CANVAS_SIZES,
    settings: CanvasSettings | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[Canvases, Canvases]:
    """(train, test) canvases from MNIST ``digits`` and Fashion-MNIST ``items``, built once
    and cached as ``<cache>/datasets/canvases-<digest>.npz`` (masks stored as uint8)."""
    settings = settings or CanvasSettings()
    source = (
        f"{_FORMAT}:{settings.describe()}:sizes={sizes[0]},{sizes[1]}:"
        f"mnist={digits.fingerprint}:fashion={items.fingerprint}"
    )
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = default_cache_dir(cache_dir) / "datasets" / f"canvases-{key}.npz"
    data = _read_cache(path, source)
    if data is None:
        generator = torch.Generator().manual_seed(settings.seed)
        built = {}
        for split, count in (("train", sizes[0]), ("test", sizes[1])):
            glyphs, classes = _glyph_pool(getattr(digits, split), getattr(items, split))
            canvases = draw_canvases(glyphs, classes, count, settings, generator)
            built[f"{split}_images"] = canvases.images.numpy()
            built[f"{split}_masks"] = canvases.masks.to(torch.uint8).numpy()
            built[f"{split}_boxes"] = canvases.boxes.to(torch.int16).numpy()
        data = dict(built)
        payload: dict[str, Any] = {
            **built,
            "source": np.array(source),
            "sha256": np.array(_digest(built)),
        }
        try:
            atomic_write(path, lambda handle: np.savez(handle, **payload))
        except OSError as exc:  # only a warning: the canvases are in memory
            warnings.warn(f"could not write canvas cache {path} ({exc})", stacklevel=2)
    return tuple(  # type: ignore[return-value]
        Canvases(
            torch.from_numpy(data[f"{split}_images"]),
            torch.from_numpy(data[f"{split}_masks"].astype(np.int64)),
            torch.from_numpy(data[f"{split}_boxes"].astype(np.int64)),
        )
        for split in ("train", "test")
    )


def canvas_dataset(name: str, train: Canvases, test: Canvases, labels: str) -> DataSet:
    """A :class:`DataSet` whose labels are the canvases' ``masks`` (21 classes, 0 =
    background) or ``boxes`` (20 classes)."""
    if labels not in ("masks", "boxes"):
        raise KDistillError(f"canvas labels must be 'masks' or 'boxes', got {labels!r}")
    splits = [Split(c.images, getattr(c, labels)) for c in (train, test)]
    return DataSet(
        name=name,
        train=splits[0],
        test=splits[1],
        num_classes=GLYPH_CLASSES + 1 if labels == "masks" else GLYPH_CLASSES,
        fingerprint=compute_fingerprint(splits[0], splits[1]),
    )


# --- Checks of a user's dense labels ----------------------------------------------------------


def check_masks(masks: np.ndarray, images: np.ndarray, where: str, num_classes: int) -> np.ndarray:
    """Masks ``[N, H, W]`` of integer class ids 0..num_classes-1 (0 = background), one per
    image and of its size, each with some foreground; returned as int64."""
    if masks.ndim != 3 or masks.shape[0] != images.shape[0] or masks.shape[1:] != images.shape[2:]:
        raise KDistillError(
            f"{where} has shape {list(masks.shape)}, expected [N, H, W] = "
            f"{[images.shape[0], *images.shape[2:]]} (one mask per image, of its size)"
        )
    if not np.issubdtype(masks.dtype, np.integer):
        raise KDistillError(f"{where} has dtype {masks.dtype}: store integer class ids")
    low, high = int(masks.min()), int(masks.max())
    if low < 0 or high >= num_classes:
        raise KDistillError(
            f"{where} holds class id {low if low < 0 else high}, outside 0..{num_classes - 1}: "
            "fix the ids or set num_classes in the file"
        )
    empty = np.flatnonzero(masks.reshape(len(masks), -1).max(axis=1) == 0)
    if len(empty):
        raise KDistillError(
            f"{where}[{int(empty[0])}] is empty (background only; {len(empty)} such): drop "
            "those images or label their objects"
        )
    return masks.astype(np.int64)


def check_boxes(boxes: np.ndarray, images: np.ndarray, where: str, num_classes: int) -> np.ndarray:
    """Boxes ``[N, K, 5]`` rows (class, x0, y0, x1, y1) inside the image with x0 < x1 and
    y0 < y1; rows with class -1 pad; returned as int64."""
    if boxes.ndim != 3 or boxes.shape[0] != images.shape[0] or boxes.shape[2] != 5:
        raise KDistillError(
            f"{where} has shape {list(boxes.shape)}, expected [{images.shape[0]}, K, 5] rows "
            "(class, x0, y0, x1, y1), padded with class -1"
        )
    if not np.issubdtype(boxes.dtype, np.integer):
        raise KDistillError(f"{where} has dtype {boxes.dtype}: store integer pixel corners")
    classes = boxes[..., 0]
    real = classes >= 0
    bad_class = np.argwhere((classes < -1) | (classes >= num_classes))
    if len(bad_class):
        n, k = bad_class[0]
        raise KDistillError(
            f"{where}[{n}, {k}] has class {int(classes[n, k])}, outside 0..{num_classes - 1} "
            "(-1 pads): fix the ids or set num_classes in the file"
        )
    height, width = images.shape[2:]
    x0, y0, x1, y1 = (boxes[..., i] for i in range(1, 5))
    outside = real & ((x0 < 0) | (y0 < 0) | (x1 > width) | (y1 > height) | (x0 >= x1) | (y0 >= y1))
    if outside.any():
        n, k = np.argwhere(outside)[0]
        raise KDistillError(
            f"{where}[{n}, {k}] is box {boxes[n, k, 1:].tolist()}, not inside the {width} x "
            f"{height} image with x0 < x1 and y0 < y1: clip or drop it"
        )
    return boxes.astype(np.int64)
