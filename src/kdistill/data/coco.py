"""A user's detection or segmentation set in COCO format: ``coco-det:DIR`` / ``coco-seg:DIR``.

``DIR`` holds ``train.json`` and ``test.json`` (COCO object-detection annotations: ``images``
with ``id``, ``file_name``, ``width``, ``height``; ``annotations`` with ``image_id``,
``category_id``, ``bbox`` ``[x, y, width, height]`` in pixels and, for segmentation, polygon or
RLE ``segmentation``; ``categories`` with ``id``) and the image files, relative to ``DIR``. All
images must have one size (no resizing is done). Categories become classes 0..K-1 in the order
of their ids (segmentation: mask value class + 1, 0 = background); boxes become integer pixel
corners (floor of the top-left, ceiling of the bottom-right). Masks are rasterised by
pycocotools (the ``dense`` extra). JSON and images are only parsed, never executed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdistill.data.canvases import check_boxes, check_masks
from kdistill.data.dataset import DataSet, Split, compute_fingerprint, images_to_uint8
from kdistill.errors import KDistillError

__all__ = ["load_coco"]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise KDistillError(
            f"COCO folder {path.parent} has no {path.name}: add train.json and test.json"
        )
    try:
        loaded = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KDistillError(f"{path} is not valid JSON ({exc}): write COCO annotations") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(loaded, dict) or not isinstance(loaded.get(key), list):
            raise KDistillError(
                f"{path} has no list {key!r}: a COCO file needs images, annotations, categories"
            )
    return loaded


def _read_image(path: Path, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(
                image.convert("L")
                if image.mode in ("L", "1", "P", "I;16")
                else image.convert("RGB")
            )
    except FileNotFoundError:
        raise KDistillError(f"{where}: image file {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise KDistillError(f"{where}: {path} is not a readable image ({exc})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _split(
    directory: Path, name: str, kind: str, classes: dict[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    path = directory / f"{name}.json"
    coco = _read_json(path)
    images = sorted(coco["images"], key=lambda image: image["id"])
    if not images:
        raise KDistillError(f"{path} lists no images: give at least one")
    index = {image["id"]: position for position, image in enumerate(images)}
    pixels = [
        _read_image(directory / image["file_name"], f"{path} image {image['id']}")
        for image in images
    ]
    shapes = {array.shape for array in pixels}
    if len(shapes) > 1:
        raise KDistillError(
            f"{path}: images have different shapes {sorted(shapes)}: resize them to one size"
        )
    stacked = images_to_uint8(np.stack(pixels), f"{path} images")
    height, width = stacked.shape[2:]
    per_image: list[list[dict[str, Any]]] = [[] for _ in images]
    for annotation in coco["annotations"]:
        where = f"{path}: annotation {annotation.get('id')}"
        if annotation.get("image_id") not in index:
            raise KDistillError(
                f"{where} has image_id {annotation.get('image_id')!r}, not an image of the file"
            )
        if annotation.get("category_id") not in classes:
            raise KDistillError(
                f"{where} has category_id {annotation.get('category_id')!r}, not one of the "
                f"categories {sorted(classes)}"
            )
        x, y, w, h = (float(value) for value in annotation.get("bbox", [0, 0, 0, 0]))
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
            raise KDistillError(
                f"{where} has bbox {[x, y, w, h]}, not inside the {width} x {height} image with "
                "positive width and height: clip or drop it"
            )
        per_image[index[annotation["image_id"]]].append(annotation)
    if kind == "detection":
        most = max(1, max(len(found) for found in per_image))
        boxes = np.full((len(images), most, 5), -1, dtype=np.int64)
        for position, found in enumerate(per_image):
            for slot, annotation in enumerate(found):
                x, y, w, h = annotation["bbox"]
                boxes[position, slot] = [
                    classes[annotation["category_id"]], math.floor(x), math.floor(y),
                    math.ceil(x + w), math.ceil(y + h),
                ]  # fmt: skip
        return stacked, check_boxes(boxes, stacked, f"{path}: boxes", len(classes))
    masks = np.zeros((len(images), height, width), dtype=np.int64)
    for position, found in enumerate(per_image):
        for annotation in found:
            masks[position][_rasterise(annotation, height, width, path) > 0] = (
                classes[annotation["category_id"]] + 1
            )
    return stacked, check_masks(masks, stacked, f"{path}: masks", len(classes) + 1)


def _rasterise(annotation: dict[str, Any], height: int, width: int, path: Path) -> np.ndarray:
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise KDistillError(
            "COCO segmentation needs pycocotools: pip install 'kdistill[dense]'"
        ) from None
    segmentation = annotation.get("segmentation")
    if not segmentation:
        raise KDistillError(
            f"{path}: annotation {annotation.get('id')} has no segmentation: coco-seg needs "
            "polygons or RLE for every annotation"
        )
    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return np.asarray(mask_utils.decode(rle))


def load_coco(directory: str | Path, kind: str) -> DataSet:
    """A detection (``kind="detection"``) or segmentation set from a COCO folder."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise KDistillError(
            f"COCO folder {directory} does not exist: give a folder with train.json and test.json"
        )
    categories = _read_json(directory / "train.json")["categories"]
    ids = sorted(int(category["id"]) for category in categories)
    if not ids:
        raise KDistillError(f"{directory / 'train.json'} lists no categories")
    classes = {category_id: position for position, category_id in enumerate(ids)}
    splits = {}
    for name in ("train", "test"):
        images, labels = _split(directory, name, kind, classes)
        splits[name] = Split(torch.from_numpy(images), torch.from_numpy(labels))
    if splits["train"].inputs.shape[1:] != splits["test"].inputs.shape[1:]:
        raise KDistillError(f"{directory}: train and test images differ in shape: use one size")
    if kind == "detection":  # one box count for both splits, so batches stack
        most = max(split.labels.shape[1] for split in splits.values())
        for name, split in splits.items():
            padding = torch.full(
                (len(split), most - split.labels.shape[1], 5), -1, dtype=torch.long
            )
            splits[name] = Split(split.inputs, torch.cat([split.labels, padding], dim=1))
    return DataSet(
        name=directory.name,
        train=splits["train"],
        test=splits["test"],
        num_classes=len(classes) + (1 if kind == "segmentation" else 0),
        fingerprint=compute_fingerprint(splits["train"], splits["test"]),
    )
