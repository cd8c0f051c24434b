"""``kdistill bench dense``: the segmentation teacher, the student alone, the student with each
structured-distillation term (Liu et al. 2019: pixel-wise, pair-wise, holistic), with the first
two and with all three, on glyph canvases.

One teacher (seed 0, the whole training set) is trained first; then, seeds being the outer
loop, every student cell is one stage (:func:`kdistill.studies.stages.run_stage`: a run config
trained once, keyed by its digest; a killed stage resumes from its epoch checkpoint). The report
is rewritten after every seed, so an interrupted benchmark still reports its finished seeds.
Parameters, multiply-accumulates (``torch.utils.flop_counter``) and CPU latency (one thread)
are measured on the saved teacher and student; the pictures show test canvases with the ground
truth beside the predictions of the teacher, the student alone and the distilled student.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdistill.data import DataSet, load_dataset
from kdistill.engine.checkpoint import load_model
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text, cache_dir
from kdistill.models import count_parameters
from kdistill.studies.command import bench_command_line
from kdistill.studies.dense.plan import SEG_METHODS, seg_cell_config, seg_teacher_config
from kdistill.studies.dense.report import draw_predictions, render_report
from kdistill.studies.self_online.report import machine
from kdistill.studies.stages import run_stage
from kdistill.tasks.segmentation import predict_masks


@dataclass
class DenseBenchSettings:
    """Options of ``kdistill bench dense`` (see the CLI help for each)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    tasks: list[str] = field(default_factory=lambda: ["segmentation"])
    teacher_epochs: int = 8
    epochs: int = 20
    train_fraction: float = 0.5
    student_lr: float | None = None
    """The students' learning rate instead of their configs' (segmentation)."""
    seg_methods: list[str] = field(default_factory=lambda: list(SEG_METHODS))
    """Which segmentation cells to train (``student`` always is: the gains are paired to it)."""
    det_student_width: int = 1
    """The detection student's channels times this (1: the shipped 27k-parameter student)."""
    work_dir: Path = Path("runs/bench-dense")
    output_dir: Path = Path("docs/results/dense")

    def command_line(self) -> str:
        return bench_command_line(
            "OMP_NUM_THREADS=1 kdistill bench dense",
            self,
            {
                "seeds": "seeds",
                "tasks": "tasks",
                "seg_methods": "seg-methods",
                "det_student_width": "det-student-width",
                "teacher_epochs": "teacher-epochs",
                "epochs": "epochs",
                "train_fraction": "train-fraction",
                "student_lr": "student-lr",
                "work_dir": "work-dir",
                "output_dir": "output-dir",
            },
        )


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _cell(stage: Any) -> dict[str, Any]:
    test = stage.metrics()
    return {
        "miou": test["miou"],
        "pixel_accuracy": test["pixel_accuracy"],
        "per_class_iou": test["per_class_iou"],
        "seconds": round(stage.seconds, 1),
        "epochs": len(stage.history),
        "run_dir": str(stage.run_dir),
    }


def profile(model: nn.Module, example: torch.Tensor, repeats: int = 20) -> dict[str, Any]:
    """Parameters, MACs of one example (half the FLOPs torch's counter reports) and CPU
    latency (median of ``repeats`` timed no-grad calls, batch 1 and 100, this thread count)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example[:1])
    result: dict[str, Any] = {
        "parameters": count_parameters(model),
        "macs": counter.get_total_flops() // 2,
        "threads": torch.get_num_threads(),
    }
    for batch in (1, 100):
        inputs = example[:1].repeat(batch, 1, 1, 1)
        with torch.no_grad():
            for _ in range(3):
                model(inputs)
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                model(inputs)
                timings.append(1000 * (time.perf_counter() - started))
        result[f"latency_batch_{batch}_ms"] = round(statistics.median(timings), 3)
    return result


def run_dense_benchmark(settings: DenseBenchSettings) -> dict[str, Any]:
    """Train (or read back) every cell; write ``results.json``, ``README.md`` and pictures
    (segmentation), ``detection.json``, ``detection.md`` and ``detection.png`` (detection)."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    report: dict[str, Any] = {}
    if "detection" in settings.tasks:
        from kdistill.studies.dense.detection import run_detection

        report["detection"] = run_detection(settings, started)
    if "segmentation" in settings.tasks:
        report["segmentation"] = _run_segmentation(settings, started)
    return report


def _run_segmentation(settings: DenseBenchSettings, started: float) -> dict[str, Any]:
    unknown = sorted(set(settings.seg_methods) - set(SEG_METHODS))
    if unknown:
        raise KDistillError(
            f"unknown segmentation cell(s) {', '.join(unknown)}: give --seg-methods from "
            f"{' '.join(SEG_METHODS)}"
        )
    log(f"seeds {settings.seeds}, teacher {settings.teacher_epochs} epochs, students "
        f"{settings.epochs} epochs on {settings.train_fraction:g} of the canvases")  # fmt: skip
    dataset = load_dataset("canvases-seg", cache_dir=cache_dir())
    folder = settings.work_dir / "segmentation"
    teacher_stage = run_stage(
        "seg-teacher", seg_teacher_config(settings.teacher_epochs), folder, dataset
    )
    teacher_path = teacher_stage.model_path()
    log(f"teacher: test mIoU {teacher_stage.metrics()['miou']:.4f} ({teacher_stage.seconds:.0f} s)")
    methods = [
        method for method in SEG_METHODS if method == "student" or method in settings.seg_methods
    ]
    cells: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
    paths: dict[str, Path] = {}
    report: dict[str, Any] = {}
    for seed in settings.seeds:
        for method in methods:
            config = seg_cell_config(
                method, seed, settings.epochs, settings.train_fraction, teacher_path,
                settings.student_lr,
            )  # fmt: skip
            stage = run_stage(f"seg-{method}", config, folder / f"seed-{seed}", dataset)
            cells[method].append(_cell(stage))
            paths.setdefault(method, stage.model_path())
            log(f"[seed {seed}] {method}: test mIoU {stage.metrics()['miou']:.4f} "
                f"({stage.seconds:.0f} s)")  # fmt: skip
        report = _write(settings, dataset, teacher_stage, teacher_path, cells, paths, started)
    return report


def _write(
    settings: DenseBenchSettings,
    dataset: DataSet,
    teacher_stage: Any,
    teacher_path: Path,
    cells: dict[str, list[dict[str, Any]]],
    paths: dict[str, Path],
    started: float,
) -> dict[str, Any]:
    test = dataset.test
    example = test.input_encoding.encode(test.inputs[:1])
    teacher, _ = load_model(teacher_path)
    student, _ = load_model(paths["student"])
    seeds_done = len(cells["student"])
    report = {
        "command": settings.command_line(),
        "machine": machine() + "; shared with other jobs",
        "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
        "rule": (
            f"test mIoU (background included) of the model after the last epoch; students "
            f"{settings.epochs} epochs on {settings.train_fraction:g} of the {len(dataset.train)} "
            f"(learning rate {settings.student_lr or 'as configured'}) "
            f"training canvases, {seeds_done} seed(s) (mean, sample std); teacher "
            f"{settings.teacher_epochs} epochs on all of them, seed 0"
        ),
        "data": {
            "name": dataset.name,
            "train": len(dataset.train),
            "test": len(test),
            "classes": dataset.num_classes,
            "canvas": list(test.inputs.shape[1:]),
        },
        "seeds": settings.seeds[:seeds_done],
        "teacher": {**_cell(teacher_stage), "profile": profile(teacher, example)},
        "student_profile": profile(student, example),
        "cells": cells,
    }
    output = settings.output_dir
    output.mkdir(parents=True, exist_ok=True)
    report["detection_reports"] = sorted(path.name for path in output.glob("detection*.md"))
    shown = {"teacher": teacher}
    for method in ("student", "all", "full"):
        if method in paths:
            shown[method], _ = load_model(paths[method])
    predictions = {
        name: predict_masks(model, test.subset(torch.arange(8))) for name, model in shown.items()
    }
    draw_predictions(output / "segmentation.png", test.inputs[:8], test.labels[:8], predictions)
    atomic_write_text(output / "results.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(output / "README.md", render_report(report))
    log(f"wrote {output / 'results.json'}, README.md and segmentation.png ({seeds_done} seed(s))")
    return report
