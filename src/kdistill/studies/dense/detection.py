"""``kdistill bench dense --tasks detection``: the grid detector's teacher, the student alone, the
student with each of Chen et al. (2017)'s terms (soft targets with background weight, bounded
regression, hints through a 1x1 adapter) and with all three, on glyph canvases with boxes.

Same harness as the segmentation half (:mod:`kdistill.studies.dense.runner`): one teacher,
seeds the outer loop, each cell a :func:`~kdistill.studies.stages.run_stage` unit, the report
(``detection.md``, ``detection.json``, ``detection.png``) rewritten after every seed.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import torch

from kdistill.data import Split, load_dataset
from kdistill.engine.checkpoint import load_model
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_bytes, atomic_write_text, cache_dir
from kdistill.losses.detection import (
    bound_switched_on,
    box_errors,
    grid_targets,
    split_outputs,
)
from kdistill.studies.dense.plan import DET_LABELS, DET_METHODS, det_cell_config, det_teacher_config
from kdistill.studies.dense.report import pm, profile_row, summarise, verdict, verdicts
from kdistill.studies.dense.runner import DenseBenchSettings, log, profile
from kdistill.studies.self_online.report import machine
from kdistill.studies.stages import run_stage
from kdistill.tasks.classification import predict_logits
from kdistill.tasks.detection import STRIDE, decode_detections

MIN_SHOWN_SCORE = 0.1
"""Pictures show each model's (at most 5) best detections above this score."""


def _cell(stage: Any) -> dict[str, Any]:
    test = stage.metrics()
    return {
        "map": test["map"],
        "map_50": test["map_50"],
        "seconds": round(stage.seconds, 1),
        "epochs": len(stage.history),
    }


def where_they_lose(
    outputs: torch.Tensor, teacher_outputs: torch.Tensor, boxes: torch.Tensor, stride: int = STRIDE
) -> dict[str, float]:
    """Where a detector's mAP goes, on the positive cells of ``boxes``' grid targets: the mean
    squared box-offset error ``||R - y||^2`` (Chen et al. eq. 3's), the share of those cells
    where it exceeds the teacher's (where the bounded regression with m = 0 is switched on),
    and the mean probability given to the true class."""
    logits, offsets = split_outputs(outputs)
    _, teacher_offsets = split_outputs(teacher_outputs)
    classes, target = grid_targets(boxes, tuple(logits.shape[-2:]), stride)
    positive = classes > 0
    error = box_errors(offsets, target, positive)
    on = bound_switched_on(error, box_errors(teacher_offsets, target, positive), margin=0.0)
    true_class = logits.softmax(dim=1).gather(1, classes[:, None]).squeeze(1)[positive]
    return {
        "box_error": float(error.mean()),
        "worse_than_teacher": float(on.float().mean()),
        "true_class_probability": float(true_class.mean()),
    }


def report_stem(student_width: int) -> str:
    """``detection`` for the shipped student; ``detection-width-N`` for one N times wider, so
    the reports of several students sit side by side."""
    return "detection" if student_width == 1 else f"detection-width-{student_width}"


def run_detection(settings: DenseBenchSettings, started: float) -> dict[str, Any]:
    width = settings.det_student_width
    if width < 1:
        raise KDistillError(
            f"--det-student-width {width}: give a whole number of at least 1 (the student's "
            "channels times it)"
        )
    dataset = load_dataset("canvases-det", cache_dir=cache_dir())
    folder = settings.work_dir / "detection"
    teacher_config = det_teacher_config(settings.teacher_epochs, settings.train_fraction)
    teacher_stage = run_stage("det-teacher", teacher_config, folder, dataset)
    teacher_path = teacher_stage.model_path()
    log(f"detection teacher: test mAP {teacher_stage.metrics()['map']:.4f}")
    cells: dict[str, list[dict[str, Any]]] = {method: [] for method in DET_METHODS}
    paths: dict[str, Path] = {}
    student_kwargs = det_cell_config(
        "student", settings.seeds[0], settings.epochs, settings.train_fraction, teacher_path, width
    ).model.kwargs
    test = dataset.test
    models: dict[str, torch.nn.Module] = {}
    measured: dict[str, Any] = {}
    report: dict[str, Any] = {}
    for seed in settings.seeds:
        for method in DET_METHODS:
            config = det_cell_config(
                method, seed, settings.epochs, settings.train_fraction, teacher_path, width
            )
            stage = run_stage(f"det-{method}", config, folder / f"seed-{seed}", dataset)
            cells[method].append(_cell(stage))
            paths.setdefault(method, stage.model_path())
            log(f"[detection seed {seed}] {method}: test mAP {stage.metrics()['map']:.4f}")
        if not models:  # the first seed's models, fixed from here on: loaded and measured once
            models = {"teacher": load_model(teacher_path)[0]}
            models.update((method, load_model(path)[0]) for method, path in paths.items())
            example = test.input_encoding.encode(test.inputs[:1])
            measured = {
                "teacher": profile(models["teacher"], example),
                "student": profile(models["student"], example),
                "where_they_lose": _diagnose(models, test),
            }
        report = {
            "command": settings.command_line(),
            "machine": machine() + "; shared with other jobs",
            "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
            "rule": (
                f"COCO mAP (pycocotools) on the {len(test)} test canvases after the last epoch; "
                f"teacher (seed 0) {settings.teacher_epochs} epochs and students "
                f"{settings.epochs} epochs on {settings.train_fraction:g} of the "
                f"{len(dataset.train)} training canvases; {len(cells['student'])} seed(s)"
            ),
            "teacher": {**_cell(teacher_stage), "profile": measured["teacher"]},
            "student_width": width,
            "student_model": {key: student_kwargs[key] for key in ("channels", "decoder_channels")},
            "teacher_model": {
                key: teacher_config.model.kwargs[key] for key in ("channels", "decoder_channels")
            },
            "student_profile": measured["student"],
            "cells": cells,
            "where_they_lose": measured["where_they_lose"],
        }
        output = settings.output_dir
        output.mkdir(parents=True, exist_ok=True)
        shown = {"teacher": models["teacher"], "student alone": models["student"]}
        if "all" in models:
            shown["student + all three"] = models["all"]
        stem = report_stem(width)
        _draw(output / f"{stem}.png", test.inputs[:6], test.labels[:6], shown)
        atomic_write_text(output / f"{stem}.json", json.dumps(report, indent=2) + "\n")
        atomic_write_text(output / f"{stem}.md", render_detection(report))
        log(f"wrote {output / stem}.md ({len(cells['student'])} seed(s))")
    return report


def _diagnose(models: dict[str, torch.nn.Module], test: Split) -> dict[str, Any]:
    """:func:`where_they_lose` for the teacher and every other model of ``models``."""
    teacher_outputs = predict_logits(models["teacher"], test, batch_size=250)
    return {
        method: where_they_lose(
            predict_logits(model, test, batch_size=250) if method != "teacher" else teacher_outputs,
            teacher_outputs,
            test.labels,
        )
        for method, model in models.items()
    }


def _diagnosis_lines(found: dict[str, dict[str, float]]) -> list[str]:
    if not found:
        return []
    lines = [
        "## Where the students lose (first seed, positive cells of the test canvases)",
        "",
        "| model | box error ‖R − y‖² | cells worse than the teacher (bound on) | p(true class) |",
        "|---|---:|---:|---:|",
    ]
    for method, row in found.items():
        name = "teacher" if method == "teacher" else DET_LABELS[method]
        worse = "—" if method == "teacher" else f"{100 * row['worse_than_teacher']:.1f}%"
        lines.append(
            f"| {name} | {row['box_error']:.3f} | {worse} | {row['true_class_probability']:.3f} |"
        )
    return [
        *lines,
        "",
        "Positive cells are the detector's training positives (within one cell of an object's "
        "centre); box error is the squared error of the four log-distance offsets. A student "
        "far below the teacher in p(true class) but close in box error loses its mAP to "
        "classification, where a regression term cannot help.",
        "",
    ]


def render_detection(report: dict[str, Any]) -> str:
    teacher = report["teacher"]
    width = report.get("student_width", 1)
    stem = report_stem(width)
    student, teacher_model = report["student_model"], report["teacher_model"]
    rows = summarise(report["cells"], DET_METHODS, "map", ("map_50",))
    lines = [
        "# Distillation for object detection on glyph canvases (Chen et al. 2017)",
        "",
        "Written by `kdistill bench dense --tasks detection`; every figure was measured by it.",
        "",
        f"- Command: `{report['command']}`",
        f"- Machine: {report['machine']}",
        f"- Rule: {report['rule']}",
        "- Detector: `detnet`, FCOS-style on a stride-4 grid, NMS-free peak decoding; terms: "
        "`detection_soft_targets` (weight 0.5, w0 = 1.5, T = 1), `bounded_regression` "
        "(weight 0.5, m = 0), `fitnet` hint on `backbone.decode4` through a 1x1 adapter "
        "(weight 1, mean); every student also has its ground-truth loss.",
        f"- Student: `detnet` channels {student['channels']}, decoder "
        f"{student['decoder_channels']} "
        + (
            "(the shipped `configs/dense/det-student.yaml`)"
            if width == 1
            else f"(`--det-student-width {width}`: the shipped student's channels times {width})"
        )
        + f"; teacher channels {teacher_model['channels']}, decoder "
        f"{teacher_model['decoder_channels']}.",
        "",
        "| model | parameters | MACs / canvas | CPU latency batch 1 (ms) | batch 100 (ms) |",
        "|---|---:|---:|---:|---:|",
        profile_row("teacher", teacher["profile"]),
        profile_row("student", report["student_profile"]),
        "",
        f"Teacher: mAP@[.5:.95] {100 * teacher['map']:.2f}, mAP@0.5 {100 * teacher['map_50']:.2f}.",
        "",
        "| student | mAP@[.5:.95] (%) | mAP@0.5 (%) | gain in mAP over alone (paired) | "
        "seeds better | s / run | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for method, row in rows.items():
        paired = "gain" in row
        better = f"{row['seeds_better']}/{row['seeds']}" if paired else "—"
        lines.append(
            f"| {DET_LABELS[method]} | {pm(row['map'])} | {pm(row['map_50'])} | "
            f"{pm(row['gain']) if paired else '—'} | {better} | "
            f"{row['seconds']:.0f} | {verdict(row) if paired else '—'} |"
        )
    lines += [
        "",
        *verdicts(rows, DET_LABELS),
        "- A gain counts as help only when it is positive on every seed and there are at least "
        "two seeds. `s / run` is each unit's wall time on the shared machine, which other jobs "
        "used at the same time.",
        "",
        *_diagnosis_lines(report.get("where_they_lose", {})),
        f"![test canvases: ground truth, teacher, student alone, distilled student]({stem}.png)",
        "",
        f"Pictures: the first six test canvases; each model's best detections (at most 5) "
        f"scoring at least {MIN_SHOWN_SCORE}, labelled class:score (seed 0's students).",
        "",
    ]
    return "\n".join(lines)


def _draw(path: Path, images: torch.Tensor, boxes: torch.Tensor, models: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = {}
    with torch.no_grad():
        for name, model in models.items():
            model.eval()
            found[name] = decode_detections(model(images.float() / 255))
    columns = ["ground truth", *found]
    figure, axes = plt.subplots(
        len(images), len(columns), figsize=(1.8 * len(columns), 1.8 * len(images))
    )
    for row in range(len(images)):
        for column, name in enumerate(columns):
            axis = axes[row, column]
            axis.imshow(images[row, 0].numpy(), cmap="gray", vmin=0, vmax=255)
            shown = (
                [(c, 1.0, *xy) for c, *xy in boxes[row].tolist() if c >= 0]
                if name == "ground truth"
                else [r for r in found[name][row].tolist() if r[1] >= MIN_SHOWN_SCORE][:5]
            )
            for label, score, x0, y0, x1, y1 in shown:
                axis.add_patch(
                    plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="red")
                )
                text = str(int(label)) if name == "ground truth" else f"{int(label)}:{score:.2f}"
                axis.text(x0, y0, text, color="yellow", fontsize=6)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(name, fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
