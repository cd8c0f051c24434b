"""Segmentation task: mIoU against a hand example, probe errors, and a tiny run on real
canvases that beats the untrained model (plain training and distillation, one engine)."""

from pathlib import Path

import pytest
import torch
from torch import nn

from kdistill.config import parse_config
from kdistill.data import Split
from kdistill.data.canvases import CanvasSettings, canvas_dataset, load_canvases
from kdistill.errors import KDistillError
from kdistill.methods import distill, train
from kdistill.models import create_model
from kdistill.tasks import create_task
from kdistill.tasks.segmentation import evaluate_segmenter, intersection_over_union

FASHION = Path("/usr/share/datasets/fashion-mnist")


class FixedLogits(nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(inputs)]


def test_miou_matches_a_hand_example():
    masks = torch.tensor([[[0, 1], [1, 2]]])
    predicted = torch.tensor([[[0, 1], [2, 2]]])
    logits = torch.nn.functional.one_hot(predicted, 4).permute(0, 3, 1, 2).float()
    split = Split(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), masks)
    evaluation = evaluate_segmenter(FixedLogits(logits), split)
    # class 0: 1/1; class 1: TP 1, FN 1 -> 1/2; class 2: TP 1, FP 1 -> 1/2; class 3: absent.
    assert evaluation.per_class_iou == [1.0, 0.5, 0.5, None]
    assert evaluation.miou == pytest.approx(2 / 3)
    assert evaluation.summary()["errors"] == 1 and evaluation.summary()["total"] == 4
    assert intersection_over_union(torch.zeros(2, 2, dtype=torch.long)) == [None, None]


def test_probe_names_a_model_that_does_not_predict_at_input_resolution():
    task = create_task("segmentation")
    split = Split(
        torch.zeros(2, 1, 16, 16, dtype=torch.uint8), torch.zeros(2, 16, 16, dtype=torch.long)
    )
    assert (
        task.probe(
            create_model("segnet", channels=[2, 2, 2, 2], decoder_channels=2, num_classes=5),
            split,
            "student",
        )
        == 5
    )
    strided = nn.Conv2d(1, 5, 3, stride=2, padding=1)
    with pytest.raises(KDistillError, match="output stride 2"):
        task.probe(strided, split, "teacher t.safetensors")
    with pytest.raises(KDistillError, match="must return logits \\[batch, classes, H, W\\]"):
        task.probe(nn.Sequential(nn.Flatten(), nn.Linear(256, 5)), split, "student")
    boxes = Split(split.inputs, torch.zeros(2, 3, 5, dtype=torch.long))
    with pytest.raises(KDistillError, match="needs masks \\[N, H, W\\]"):
        task.probe(strided, boxes, "student")
    with pytest.raises(KDistillError, match="data.max_shift: 0"):
        task.loader(split, 2, shuffle=True, seed=0, max_shift=2, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def small_canvases(mnist, tmp_path_factory):
    from kdistill.data.loaders import load_fashion_mnist

    cache = tmp_path_factory.mktemp("canvases")
    items = load_fashion_mnist()
    train_set, test_set = load_canvases(
        mnist,
        items,
        sizes=(400, 100),
        settings=CanvasSettings(size=32, max_objects=2, min_scale=12, max_scale=20),
        cache_dir=cache,
    )
    return canvas_dataset("small-canvases", train_set, test_set, "masks")


def _config(tmp_path, name, channels, extra=None):
    raw = {
        "output_dir": str(tmp_path / name),
        "task": "segmentation",
        "data": {"name": "canvases-seg"},
        "model": {
            "name": "segnet",
            "kwargs": {"channels": channels, "decoder_channels": channels[-1]},
        },
        "train": {
            "epochs": 3,
            "batch_size": 25,
            "optimizer": {"name": "adamw", "lr": 0.01},
            "progress": False,
            "threads": 1,
        },
        **(extra or {}),
    }
    return parse_config(raw)


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian package dataset-fashion-mnist")
def test_training_and_distilling_beat_the_untrained_model(tmp_path, small_canvases):
    untrained = create_model("segnet", channels=[4, 4, 8, 8], decoder_channels=8)
    before = evaluate_segmenter(untrained, small_canvases.test)
    teacher = train(_config(tmp_path, "teacher", [8, 8, 16, 16]), dataset=small_canvases)
    taught = teacher.final["model"]["test"]
    assert taught["pixel_accuracy"] > before.summary()["pixel_accuracy"] + 0.1
    assert taught["miou"] > before.miou
    terms = {
        "teachers": [{"checkpoint": str(tmp_path / "teacher" / "model.safetensors")}],
        "soft_target_weight": 0,
        "hard_target_weight": 1.0,
        "terms": [
            {"kind": "pixel_kl", "weight": 10.0},
            {"kind": "pairwise", "student": "decode4", "teacher": "decode4", "node_size": 2},
        ],
    }
    result = distill(
        _config(tmp_path, "student", [4, 4, 8, 8], {"distill": terms}), dataset=small_canvases
    )
    student = result.final["student"]["test"]
    assert student["pixel_accuracy"] > before.summary()["pixel_accuracy"] + 0.1
    assert student["miou"] > before.miou
    losses = result.history[-1]["train"]["loss"]
    assert set(losses) == {"hard_targets", "pixel_kl", "pairwise"} and all(
        v > 0 for v in losses.values()
    )


def test_classification_refuses_dense_labels_naming_the_task_key():
    split = Split(
        torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(2, 8, 8, dtype=torch.long)
    )
    with pytest.raises(KDistillError, match="set task: segmentation or detection"):
        create_task("classification").probe(nn.Conv2d(1, 3, 1), split, "student")
