"""Detection task: decoding and pycocotools mAP on hand-made outputs, probe errors, and a tiny
run on real canvases (training, then distillation with Chen et al.'s three terms)."""

from pathlib import Path

import pytest
import torch
from torch import nn

from kdistill.config import parse_config
from kdistill.data import Split
from kdistill.data.canvases import CanvasSettings, canvas_dataset, load_canvases
from kdistill.errors import KDistillError
from kdistill.losses.detection import grid_targets
from kdistill.methods import distill, train
from kdistill.models import create_model
from kdistill.tasks import create_task
from kdistill.tasks.detection import coco_map, decode_detections, evaluate_detector

FASHION = Path("/usr/share/datasets/fashion-mnist")
BOXES = torch.tensor([[[3, 4, 4, 20, 12], [0, 30, 30, 50, 60]], [[1, 10, 40, 30, 58], [-1] * 5]])


def _perfect_outputs(boxes: torch.Tensor, classes: int = 4) -> torch.Tensor:
    """What a perfect detector outputs: positives of each box, its centre cell highest."""
    labels, offsets = grid_targets(boxes, (16, 16), 4)
    logits = torch.nn.functional.one_hot(labels, classes + 1).permute(0, 3, 1, 2).float() * 5
    for image, rows in enumerate(boxes.tolist()):
        for label, x0, y0, x1, y1 in rows:
            if label >= 0:
                logits[image, label + 1, int((y0 + y1) / 2 // 4), int((x0 + x1) / 2 // 4)] = 9
    return torch.cat([logits, offsets], dim=1)


def test_a_perfect_detector_scores_map_one():
    detections = decode_detections(_perfect_outputs(BOXES))
    assert [len(found) for found in detections] == [2, 1]
    found = sorted(
        tuple(round(v, 3) for v in row[[0, 2, 3, 4, 5]].tolist()) for row in detections[0]
    )
    assert found == sorted(tuple(float(v) for v in row) for row in BOXES[0].tolist())
    assert coco_map(BOXES, detections, 4) == {
        "map": pytest.approx(1.0),
        "map_50": pytest.approx(1.0),
    }


def test_a_loose_box_counts_at_iou_half_but_not_at_stricter_thresholds():
    detections = decode_detections(_perfect_outputs(BOXES))
    detections[1][0, 4] += 6  # x1 30 -> 36: IoU 20/26 = 0.77 with the true box
    scores = coco_map(BOXES, detections, 4)
    assert scores["map_50"] == pytest.approx(1.0) and scores["map"] < 0.95
    missed = [found[:0] for found in detections]
    assert coco_map(BOXES, missed, 4) == {"map": 0.0, "map_50": 0.0}


def test_probe_refuses_another_output_stride_and_the_wrong_labels():
    task = create_task("detection")
    split = Split(torch.zeros(2, 1, 32, 32, dtype=torch.uint8), BOXES.clamp_max(31))
    model = create_model("detnet", channels=[2, 2, 2, 2], decoder_channels=2, num_classes=4)
    assert task.probe(model, split, "student") == 4
    with pytest.raises(KDistillError, match=r"output stride 2\); detection needs output stride 4"):
        task.probe(nn.Conv2d(1, 9, 3, stride=2, padding=1), split, "teacher t.safetensors")
    masks = Split(split.inputs, torch.zeros(2, 32, 32, dtype=torch.long))
    with pytest.raises(KDistillError, match="needs boxes \\[N, K, 5\\]"):
        task.probe(model, masks, "student")


@pytest.fixture(scope="module")
def small_canvases(mnist, tmp_path_factory):
    from kdistill.data.loaders import load_fashion_mnist

    settings = CanvasSettings(size=32, max_objects=2, min_scale=12, max_scale=20)
    train_set, test_set = load_canvases(
        mnist, load_fashion_mnist(), sizes=(400, 100), settings=settings,
        cache_dir=tmp_path_factory.mktemp("canvases"),
    )  # fmt: skip
    return canvas_dataset("small-canvases", train_set, test_set, "boxes")


def _config(tmp_path, name, channels, extra=None):
    raw = {
        "output_dir": str(tmp_path / name),
        "task": "detection",
        "data": {"name": "canvases-det"},
        "model": {"name": "detnet", "kwargs": {"channels": channels, "decoder_channels": channels[-1]}},
        "train": {"epochs": 4, "batch_size": 20, "optimizer": {"name": "adamw", "lr": 0.01},
                  "progress": False, "threads": 1},
        **(extra or {}),
    }  # fmt: skip
    return parse_config(raw)


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian package dataset-fashion-mnist")
def test_training_and_distilling_beat_the_untrained_detector(tmp_path, small_canvases):
    untrained = evaluate_detector(
        create_model("detnet", channels=[4, 4, 8, 8], decoder_channels=8), small_canvases.test
    )
    teacher = train(_config(tmp_path, "teacher", [8, 8, 16, 16]), dataset=small_canvases)
    taught = teacher.final["model"]["test"]
    assert taught["map_50"] > untrained.map_50 and taught["loss"] < untrained.loss
    terms = {
        "teachers": [{"checkpoint": str(tmp_path / "teacher" / "model.safetensors")}],
        "soft_target_weight": 0,
        "hard_target_weight": 0,
        "terms": [
            {"kind": "detection_targets"},
            {"kind": "detection_soft_targets", "background_weight": 1.5},
            {"kind": "bounded_regression", "weight": 0.5, "margin": 0.0},
            {
                "kind": "fitnet",
                "student": "backbone.decode4",
                "teacher": "backbone.decode4",
                "reduction": "mean",
            },
        ],
    }
    result = distill(
        _config(tmp_path, "student", [4, 4, 8, 8], {"distill": terms}), dataset=small_canvases
    )
    student = result.final["student"]["test"]
    assert student["loss"] < untrained.loss
    losses = result.history[-1]["train"]["loss"]
    assert set(losses) == {
        "detection_targets",
        "detection_soft_targets",
        "bounded_regression",
        "fitnet",
    }
