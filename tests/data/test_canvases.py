"""Glyph canvases: exact masks and boxes, determinism, train/test separation, user .npz checks."""

from pathlib import Path

import numpy as np
import pytest
import torch

from kdistill.data import load_dataset
from kdistill.data.canvases import (
    INK,
    CanvasSettings,
    canvas_dataset,
    draw_canvases,
    load_canvases,
)
from kdistill.data.dataset import DataSet, Split, compute_fingerprint
from kdistill.data.dense import load_dense_npz
from kdistill.errors import KDistillError

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _pool(value: int, count: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    glyphs = torch.zeros(count, 28, 28, dtype=torch.uint8)
    glyphs[:, 6:20, 10:16] = value  # a 14 x 6 bar
    return glyphs, torch.arange(count) % 3


def test_masks_and_boxes_are_the_visible_glyph_pixels():
    glyphs, classes = _pool(200)
    canvases = draw_canvases(
        glyphs, classes, 20, CanvasSettings(size=48), torch.Generator().manual_seed(1)
    )
    ink = canvases.images[:, 0] >= INK
    assert torch.equal(ink, canvases.masks > 0)  # every inked pixel is labelled, nothing else
    for index in range(20):
        rows = [row for row in canvases.boxes[index].tolist() if row[0] >= 0]
        assert 1 <= len(rows) <= 5
        for glyph_class, x0, y0, x1, y1 in rows:
            inside = canvases.masks[index, y0:y1, x0:x1] == glyph_class + 1
            # The box is tight: its border rows and columns hold the object's pixels.
            assert (
                inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            )
        labelled = {int(v) - 1 for v in canvases.masks[index].unique() if v > 0}
        assert labelled == {row[0] for row in rows}


def test_canvases_are_a_function_of_the_seed():
    glyphs, classes = _pool(255)
    one = draw_canvases(glyphs, classes, 5, CanvasSettings(), torch.Generator().manual_seed(3))
    two = draw_canvases(glyphs, classes, 5, CanvasSettings(), torch.Generator().manual_seed(3))
    three = draw_canvases(glyphs, classes, 5, CanvasSettings(), torch.Generator().manual_seed(4))
    assert torch.equal(one.images, two.images) and torch.equal(one.boxes, two.boxes)
    assert not torch.equal(one.images, three.images)


def _fake_set(name: str, value: int) -> DataSet:
    glyphs, classes = _pool(value, 10)
    split = Split(glyphs[:, None].contiguous(), classes)
    return DataSet(name, split, split, 10, compute_fingerprint(split, split))


def test_train_canvases_only_use_training_glyphs_and_are_cached(tmp_path):
    train_split = Split(torch.full((4, 1, 28, 28), 0, dtype=torch.uint8), torch.arange(4))
    train_split.inputs[:, 0, 4:24, 8:20] = 50  # training glyphs are dim, test glyphs bright
    test_split = Split(torch.full((4, 1, 28, 28), 0, dtype=torch.uint8), torch.arange(4))
    test_split.inputs[:, 0, 4:24, 8:20] = 250
    items = DataSet(
        "items", train_split, test_split, 10, compute_fingerprint(train_split, test_split)
    )
    digits = DataSet(
        "digits", train_split, test_split, 10, compute_fingerprint(train_split, test_split)
    )
    train, test = load_canvases(digits, items, sizes=(12, 6), cache_dir=tmp_path)
    assert int(train.images.max()) <= 60 and int(test.images.max()) >= 200
    cached = list((tmp_path / "datasets").glob("canvases-*.npz"))
    assert len(cached) == 1
    again, _ = load_canvases(digits, items, sizes=(12, 6), cache_dir=tmp_path)
    assert torch.equal(again.masks, train.masks)
    seg = canvas_dataset("canvases-seg", train, test, "masks")
    assert seg.num_classes == 21 and seg.train.labels.shape == (12, 64, 64)


def test_a_damaged_cache_is_rebuilt(tmp_path):
    digits, items = _fake_set("digits", 120), _fake_set("items", 220)
    first, _ = load_canvases(digits, items, sizes=(3, 2), cache_dir=tmp_path)
    path = next((tmp_path / "datasets").glob("canvases-*.npz"))
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["train_masks"] = arrays["train_masks"] * 0
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="sha256"):
        rebuilt, _ = load_canvases(digits, items, sizes=(3, 2), cache_dir=tmp_path)
    assert torch.equal(rebuilt.masks, first.masks)


@pytest.mark.skipif(
    not FASHION.is_dir(), reason="needs Debian package dataset-fashion-mnist (apt-get install)"
)
def test_registered_canvases_hold_twenty_real_classes():
    seg = load_dataset("canvases-seg")
    det = load_dataset("canvases-det")
    assert seg.num_classes == 21 and det.num_classes == 20
    assert seg.train.labels.shape == (4000, 64, 64) and det.test.labels.shape == (1000, 5, 5)
    present = det.train.labels[..., 0]
    assert set(present[present >= 0].unique().tolist()) == set(range(20))
    assert torch.equal(seg.train.inputs, det.train.inputs)


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_user_segmentation_npz_loads_and_bad_masks_are_named(tmp_path):
    images = np.zeros((3, 8, 8), dtype=np.uint8)
    masks = np.zeros((3, 8, 8), dtype=np.int64)
    masks[:, 2:4, 2:4] = 2
    good = _write(
        tmp_path / "good.npz", x_train=images, x_test=images, masks_train=masks, masks_test=masks
    )
    data = load_dense_npz(good, "segmentation")
    assert data.num_classes == 3 and data.train.labels.shape == (3, 8, 8)
    empty = masks.copy()
    empty[1] = 0
    path = _write(
        tmp_path / "empty.npz", x_train=images, x_test=images, masks_train=empty, masks_test=masks
    )
    with pytest.raises(KDistillError, match=r"empty.npz: masks_train\[1\] is empty"):
        load_dense_npz(path, "segmentation")
    path = _write(
        tmp_path / "big.npz",
        x_train=images,
        x_test=images,
        masks_train=masks,
        masks_test=masks + 5,
        num_classes=np.array(3),
    )
    with pytest.raises(KDistillError, match=r"masks_test holds class id 7, outside 0..2"):
        load_dense_npz(path, "segmentation")


def test_user_detection_npz_refuses_boxes_outside_and_bad_classes(tmp_path):
    images = np.zeros((2, 10, 10), dtype=np.uint8)
    boxes = np.full((2, 3, 5), -1, dtype=np.int64)
    boxes[:, 0] = [1, 2, 2, 6, 7]
    good = _write(
        tmp_path / "d.npz", x_train=images, x_test=images, boxes_train=boxes, boxes_test=boxes
    )
    assert load_dense_npz(good, "detection").num_classes == 2
    outside = boxes.copy()
    outside[1, 1] = [0, 5, 5, 11, 8]
    path = _write(
        tmp_path / "o.npz", x_train=images, x_test=images, boxes_train=outside, boxes_test=boxes
    )
    with pytest.raises(
        KDistillError, match=r"boxes_train\[1, 1\] is box \[5, 5, 11, 8\], not inside"
    ):
        load_dense_npz(path, "detection")
    wrong = boxes.copy()
    wrong[0, 2, 0] = 4
    path = _write(
        tmp_path / "c.npz",
        x_train=images,
        x_test=images,
        boxes_train=boxes,
        boxes_test=wrong,
        num_classes=np.array(2),
    )
    with pytest.raises(KDistillError, match=r"boxes_test\[0, 2\] has class 4, outside 0..1"):
        load_dense_npz(path, "detection")
    with pytest.raises(KDistillError, match="lacks boxes_train"):
        load_dense_npz(_write(tmp_path / "m.npz", x_train=images, x_test=images), "detection")
