"""The dense benchmark's plan (which terms each cell trains) and its report's verdicts."""

import math
from pathlib import Path

import pytest
import torch

from kdistill.config import DistillRunConfig, TrainRunConfig
from kdistill.studies.dense.plan import SEG_METHODS, seg_cell_config, seg_teacher_config
from kdistill.studies.dense.report import draw_predictions, render_report, summarise, verdict


def test_cells_train_the_terms_their_names_say():
    teacher = Path("t/model.safetensors")
    assert isinstance(seg_teacher_config(3), TrainRunConfig)
    alone = seg_cell_config("student", 1, 2, 0.5, teacher)
    assert (
        isinstance(alone, TrainRunConfig) and alone.seed == 1 and alone.data.train_fraction == 0.5
    )
    kinds = {}
    for method in SEG_METHODS[1:]:
        config = seg_cell_config(method, 0, 2, 0.5, teacher)
        assert isinstance(config, DistillRunConfig) and config.task == "segmentation"
        assert config.distill.soft_target_weight == 0 and config.distill.hard_target_weight == 1
        assert config.distill.teachers[0].checkpoint == str(teacher)
        kinds[method] = sorted(term.kind for term in config.distill.terms)
        if config.distill.holistic is not None:
            assert config.distill.holistic.weight == 0.1
            kinds[method].append("holistic")
    assert kinds == {
        "pixel": ["pixel_kl"],
        "pairwise": ["pairwise"],
        "holistic": ["holistic"],
        "all": ["pairwise", "pixel_kl"],
        "full": ["pairwise", "pixel_kl", "holistic"],
    }


def test_cells_without_the_holistic_term_keep_their_digests():
    """Adding the holistic cells must not retrain the ones already run: the others are still
    read from seg-distill.yaml, and seg-distill-holistic.yaml is that file plus the holistic
    section (so "full" differs from "all" by the holistic term alone)."""
    from kdistill.config import config_digest

    teacher = Path("t/model.safetensors")
    all_terms = seg_cell_config("all", 0, 5, 0.5, teacher)
    full = seg_cell_config("full", 0, 5, 0.5, teacher)
    assert all_terms.distill.holistic is None
    assert full.model_copy(
        update={"distill": full.distill.model_copy(update={"holistic": None})}
    ) == all_terms.model_copy(update={"output_dir": full.output_dir})
    assert config_digest(all_terms) != config_digest(full)


def _run(miou):
    return {"miou": miou, "pixel_accuracy": 0.9, "per_class_iou": [0.9, None], "seconds": 1.0}


def test_verdicts_need_a_gain_on_every_seed():
    cells = {
        "student": [_run(0.30), _run(0.32)],
        "pixel": [_run(0.33), _run(0.34)],  # better on both seeds
        "pairwise": [_run(0.29), _run(0.31)],  # worse on both
        "all": [_run(0.35), _run(0.31)],  # mixed: +5, -1
    }
    rows = summarise(cells)
    assert rows["pixel"]["gain"][0] == 2.5 and verdict(rows["pixel"]) == "helped"
    assert verdict(rows["pairwise"]) == "did not help"
    assert verdict(rows["all"]).startswith("unclear")


def test_report_and_pictures_render(tmp_path):
    profile = {
        "parameters": 10,
        "macs": 2_000_000,
        "threads": 1,
        "latency_batch_1_ms": 1.0,
        "latency_batch_100_ms": 9.0,
    }
    cells = {method: [_run(0.3)] for method in SEG_METHODS}
    report = {
        "command": "kdistill bench dense",
        "machine": "test",
        "wall_seconds_this_invocation": 1.0,
        "rule": "last epoch",
        "data": {"name": "canvases-seg", "train": 4, "test": 2, "classes": 2, "canvas": [1, 8, 8]},
        "seeds": [0],
        "teacher": {**_run(0.5), "profile": profile},
        "student_profile": profile,
        "cells": cells,
    }
    text = render_report(report)
    assert "| student + pixel-wise (10 l_pi) | 30.00 ± 0.00 |" in text and "digit 0" in text
    assert "| student + holistic (0.1 l_ho) | 30.00 ± 0.00 |" in text
    assert "WGAN-GP" in text and "No holistic cell" not in text
    without = {method: runs for method, runs in cells.items() if method not in ("holistic", "full")}
    assert "No holistic cell is in this table" in render_report({**report, "cells": without})
    assert "detection" not in text  # no detection report written beside it
    linked = render_report(
        {**report, "detection_reports": ["detection-width-2.md", "detection.md"]}
    )
    assert (
        "is in [detection.md](detection.md), [detection-width-2.md](detection-width-2.md) "
        "(a student 2x wider) beside this file." in linked
    )
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    draw_predictions(
        tmp_path / "p.png", torch.zeros(2, 1, 8, 8, dtype=torch.uint8), masks, {"teacher": masks}
    )
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_detection_cells_keep_the_ground_truth_and_add_their_terms():
    from kdistill.studies.dense.plan import DET_METHODS, det_cell_config, det_teacher_config

    teacher = Path("t/model.safetensors")
    assert det_teacher_config(2, 0.5).task == "detection"
    kinds = {}
    for method in DET_METHODS[1:]:
        config = det_cell_config(method, 0, 2, 0.5, teacher)
        assert isinstance(config, DistillRunConfig) and config.distill.hard_target_weight == 0
        kinds[method] = sorted(term.kind for term in config.distill.terms)
    assert kinds == {
        "soft": ["detection_soft_targets", "detection_targets"],
        "bounded": ["bounded_regression", "detection_targets"],
        "hint": ["detection_targets", "fitnet"],
        "all": ["bounded_regression", "detection_soft_targets", "detection_targets", "fitnet"],
    }


def test_an_unknown_segmentation_cell_is_refused_before_anything_trains(tmp_path):
    from kdistill.errors import KDistillError
    from kdistill.studies.dense.runner import DenseBenchSettings, run_dense_benchmark

    settings = DenseBenchSettings(seg_methods=["student", "adversarial"], work_dir=tmp_path)
    with pytest.raises(KDistillError, match="give --seg-methods from student pixel pairwise"):
        run_dense_benchmark(settings)
    assert not any(tmp_path.iterdir())
    assert (
        "--seg-methods student holistic"
        in DenseBenchSettings(seg_methods=["student", "holistic"]).command_line()
    )


def test_a_wider_detection_student_widens_every_cell_and_leaves_width_one_as_shipped():
    from kdistill.studies.dense.plan import DET_METHODS, det_cell_config

    teacher = Path("t/model.safetensors")
    for method in DET_METHODS:
        shipped = det_cell_config(method, 0, 2, 0.5, teacher)
        wider = det_cell_config(method, 0, 2, 0.5, teacher, student_width=2)
        assert shipped.model.kwargs["channels"] == [4, 8, 16, 32]
        assert shipped.model.kwargs["decoder_channels"] == 16
        assert wider.model.kwargs["channels"] == [8, 16, 32, 64]
        assert wider.model.kwargs["decoder_channels"] == 32
        assert wider.model.kwargs["num_classes"] == 20
        assert wider.model_copy(update={"model": shipped.model}) == shipped


def test_the_detection_report_pairs_gains_by_seed_and_names_the_students_width():
    from kdistill.studies.dense.detection import render_detection, report_stem

    prof = {"parameters": 1000, "macs": 2e6, "latency_batch_1_ms": 1.0,
            "latency_batch_100_ms": 10.0}  # fmt: skip
    cells = {
        "student": [{"map": 0.03, "map_50": 0.06, "seconds": 10}, {"map": 0.05, "map_50": 0.08, "seconds": 12}],
        "soft": [{"map": 0.04, "map_50": 0.07, "seconds": 20}, {"map": 0.06, "map_50": 0.09, "seconds": 22}],
    }  # fmt: skip
    report = {
        "command": "OMP_NUM_THREADS=1 kdistill bench dense --det-student-width 2",
        "machine": "test",
        "rule": "rule",
        "teacher": {"map": 0.3, "map_50": 0.5, "profile": prof},
        "student_width": 2,
        "student_model": {"channels": [8, 16, 32, 64], "decoder_channels": 32},
        "teacher_model": {"channels": [16, 32, 64, 128], "decoder_channels": 64},
        "student_profile": prof,
        "cells": cells,
    }
    text = render_detection(report)
    # alone 3.00 and 5.00, soft 4.00 and 6.00: +1.00 on both seeds, no spread
    assert (
        "| student + soft targets (w0 = 1.5) | 5.00 ± 1.41 | 8.00 ± 1.41 | 1.00 ± 0.00 | 2/2 | 21 "
        "| helped |" in text
    )
    assert "channels [8, 16, 32, 64], decoder 32 (`--det-student-width 2`" in text
    assert "(detection-width-2.png)" in text
    assert "- Helped (a gain on every seed): student + soft targets (w0 = 1.5)." in text
    assert "Where the students lose" not in text  # no diagnosis measured: no section
    lose = {"teacher": {"box_error": 0.3, "worse_than_teacher": 0.0, "true_class_probability": 0.25},
            "soft": {"box_error": 0.36, "worse_than_teacher": 0.59, "true_class_probability": 0.075}}  # fmt: skip
    text = render_detection({**report, "where_they_lose": lose})
    assert "| teacher | 0.300 | — | 0.250 |" in text
    assert "| student + soft targets (w0 = 1.5) | 0.360 | 59.0% | 0.075 |" in text
    assert report_stem(1) == "detection" and report_stem(3) == "detection-width-3"


def test_a_detection_student_narrower_than_one_is_refused_before_anything_trains(tmp_path):
    from kdistill.errors import KDistillError
    from kdistill.studies.dense.runner import DenseBenchSettings, run_dense_benchmark

    settings = DenseBenchSettings(tasks=["detection"], det_student_width=0, work_dir=tmp_path)
    with pytest.raises(KDistillError, match="--det-student-width 0: give a whole number"):
        run_dense_benchmark(settings)
    assert not any(tmp_path.iterdir())
    assert "--det-student-width 2" in DenseBenchSettings(det_student_width=2).command_line()


def test_where_they_lose_measures_box_error_bound_share_and_true_class_probability():
    from kdistill.losses.detection import grid_targets
    from kdistill.studies.dense.detection import where_they_lose

    # One 16 x 16 canvas, one object (class 0) at (4, 4)-(12, 12): on the stride-4 grid its
    # positive cells are rows 1-2 x columns 1-2 (centres 6 and 10 inside the box).
    boxes = torch.tensor([[[0.0, 4.0, 4.0, 12.0, 12.0]]])
    classes, target = grid_targets(boxes, (4, 4), 4)
    assert classes[0, 1:3, 1:3].eq(1).all() and int((classes > 0).sum()) == 4
    logits = torch.zeros(1, 2, 4, 4)
    logits[:, 1] = math.log(3.0)  # p(class 0) = 3 / (1 + 3) everywhere
    student = torch.cat([logits, target + 1.0], dim=1)  # squared error 4 x 1 = 4 per cell
    teacher_offsets = target.clone()
    teacher_offsets[:, :, 1, :] += 0.5  # row 1: error 4 x 0.25 = 1 (the student is worse)
    teacher_offsets[:, :, 2, :] += 1.5  # row 2: error 4 x 2.25 = 9 (the student is better)
    teacher = torch.cat([logits, teacher_offsets], dim=1)
    found = where_they_lose(student, teacher, boxes, stride=4)
    assert found["box_error"] == pytest.approx(4.0)
    assert found["worse_than_teacher"] == pytest.approx(0.5)
    assert found["true_class_probability"] == pytest.approx(0.75)
