"""COCO-format detection and segmentation folders: boxes, rasterised masks, named errors."""

import json

import numpy as np
import pytest
from PIL import Image

from kdistill.data import load_dataset
from kdistill.errors import KDistillError

pytest.importorskip("pycocotools")


def _folder(tmp_path, annotations=None):
    tmp_path.mkdir(exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / name)
    square = [[2, 2, 6, 2, 6, 6, 2, 6]]  # a polygon covering x, y in [2, 6)
    coco = {
        "images": [
            {"id": 7, "file_name": "a.png", "width": 12, "height": 10},
            {"id": 9, "file_name": "b.png", "width": 12, "height": 10},
        ],
        "annotations": annotations
        or [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 5,
                "bbox": [2, 2, 4, 4],
                "segmentation": square,
            },
            {
                "id": 2,
                "image_id": 9,
                "category_id": 3,
                "bbox": [1.5, 0, 3, 2.2],
                "segmentation": square,
            },
        ],
        "categories": [{"id": 3}, {"id": 5}],
    }
    for name in ("train.json", "test.json"):
        (tmp_path / name).write_text(json.dumps(coco))
    return tmp_path


def test_coco_boxes_become_pixel_corners_and_classes_follow_category_ids(tmp_path):
    data = load_dataset(f"coco-det:{_folder(tmp_path)}")
    assert data.num_classes == 2 and data.train.inputs.shape == (2, 1, 10, 12)
    assert data.train.labels.tolist() == [[[1, 2, 2, 6, 6]], [[0, 1, 0, 5, 3]]]


def test_coco_polygons_are_rasterised_into_masks(tmp_path):
    data = load_dataset(f"coco-seg:{_folder(tmp_path)}")
    assert data.num_classes == 3
    mask = data.train.labels[0]
    assert int((mask == 2).sum()) == 16 and bool((mask[2:6, 2:6] == 2).all())
    assert int((data.train.labels[1] == 1).sum()) == 16


def test_coco_errors_name_the_file_and_annotation(tmp_path):
    outside = [{"id": 4, "image_id": 7, "category_id": 3, "bbox": [8, 2, 6, 4]}]
    with pytest.raises(
        KDistillError, match=r"train.json: annotation 4 has bbox \[8.0, 2.0, 6.0, 4.0\], not inside"
    ):
        load_dataset(
            f"coco-det:{_folder(tmp_path / 'a' if (tmp_path / 'a').mkdir() is None else tmp_path, outside)}"
        )
    unknown = [{"id": 5, "image_id": 7, "category_id": 4, "bbox": [1, 1, 2, 2]}]
    with pytest.raises(
        KDistillError, match="annotation 5 has category_id 4, not one of the categories"
    ):
        load_dataset(f"coco-det:{_folder(tmp_path / 'b', unknown)}")
    empty = [{"id": 6, "image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2]}]
    with pytest.raises(KDistillError, match="annotation 6 has no segmentation"):
        load_dataset(f"coco-seg:{_folder(tmp_path / 'c', empty)}")
