"""``kdistill bench gan-compression``: GAN Compression (Li et al., CVPR 2020) on 28x28 data.

Per data set: the feature-space classifier (trained on the whole training set, seed 0), the
teacher GAN (seed 0, on a stratified training subset), then for every seed the four student
rows (:data:`~kdistill.studies.gan_compression.plan.STUDENTS`). Each is one stage (a run config
trained once through :func:`kdistill.studies.stages.run_stage`, keyed by its digest; a killed
stage resumes from its epoch checkpoint). Seeds are the outer loop: an interrupted benchmark
has whole seeds done, and ``--seeds`` with fewer seeds writes the report from them. Sizes,
MACs and CPU latency of the teacher and student generators and the image grids are measured
by this invocation (never cached).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdistill.data import load_dataset
from kdistill.engine.checkpoint import load_model
from kdistill.files import atomic_write_text, cache_dir
from kdistill.studies.command import bench_command_line
from kdistill.studies.gan_compression.measure import l1_to_teacher, save_grid, size_and_latency
from kdistill.studies.gan_compression.plan import (
    STUDENTS,
    classifier_config,
    recipe,
    student_config,
    teacher_config,
)
from kdistill.studies.gan_compression.report import render_report, summarise
from kdistill.studies.self_online.report import machine
from kdistill.studies.self_online.suites import SUBSET_SEED, subset
from kdistill.studies.stages import StageResult, run_stage

DATASETS = ("fashion-mnist", "mnist")


@dataclass
class GanBenchSettings:
    """Options of ``kdistill bench gan-compression`` (see the CLI help for each)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 6
    classifier_epochs: int = 2
    train_size: int = 10_000
    datasets: list[str] = field(default_factory=lambda: list(DATASETS))
    work_dir: Path = Path("runs/bench-gan-compression")
    output_dir: Path = Path("docs/results/gan-compression")

    def command_line(self) -> str:
        return bench_command_line(
            "OMP_NUM_THREADS=1 kdistill bench gan-compression",
            self,
            {
                "seeds": "seeds",
                "epochs": "epochs",
                "classifier_epochs": "classifier-epochs",
                "train_size": "train-size",
                "datasets": "datasets",
                "work_dir": "work-dir",
                "output_dir": "output-dir",
            },
        )


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _row(stage: StageResult) -> dict[str, Any]:
    """What the report keeps of one stage: the last epoch's test metrics and its time."""
    metrics = stage.metrics()
    model = next(iter(stage.final))
    first = stage.history[0][model]["test"] if stage.history else None
    return {
        "frechet_distance": metrics["frechet_distance"],
        "accuracy": metrics["accuracy"],
        "precision": metrics["precision"],
        "recall": metrics["recall"],
        "samples": metrics["total"],
        # The engine's own per-epoch timings (training + evaluation), which a resumed stage
        # keeps; the stage's wall time would count only its last process.
        "seconds": round(
            sum(record["seconds"] + record.get("eval_seconds", 0.0) for record in stage.history), 1
        ),
        "epochs": len(stage.history),
        "first_epoch_frechet_distance": first["frechet_distance"] if first else None,
    }


def run_gan_benchmark(settings: GanBenchSettings) -> dict[str, Any]:
    """Train (or read back) every stage and write ``results.json``, ``README.md`` and the grids."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    log(f"seeds {settings.seeds}, epochs {settings.epochs}, train size {settings.train_size}")
    output = settings.output_dir
    output.mkdir(parents=True, exist_ok=True)
    subsets, classifiers, teachers, teacher_dirs, classifier_rows = {}, {}, {}, {}, {}
    teacher_models: dict[str, torch.nn.Module] = {}
    for name in settings.datasets:
        full = load_dataset(name, cache_dir=cache_dir())
        subsets[name] = subset(full, settings.train_size)
        folder = settings.work_dir / name
        stage = run_stage(
            "classifier", classifier_config(name, settings.classifier_epochs), folder, full
        )
        classifiers[name] = stage.model_path()
        metrics = stage.metrics()
        classifier_rows[name] = {"test_errors": metrics["errors"], "test_total": metrics["total"]}
        log(f"[{name}] classifier: test errors {metrics['errors']}")
        stage = run_stage(
            "teacher",
            teacher_config(name, settings.epochs, classifiers[name]),
            folder,
            subsets[name],
        )
        teacher_dirs[name] = stage.run_dir
        teacher_models[name] = load_model(stage.model_path())[0]
        teachers[name] = _row(stage)
        log(f"[{name}] teacher: FD {teachers[name]['frechet_distance']}")
    cells: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {student: [] for student in STUDENTS} for name in settings.datasets
    }
    student_dirs: dict[str, dict[str, Path]] = {name: {} for name in settings.datasets}
    for seed in settings.seeds:
        for name in settings.datasets:
            for student in STUDENTS:
                config = student_config(
                    name, student, seed, settings.epochs, classifiers[name], teacher_dirs[name]
                )
                stage = run_stage(
                    f"student-{student}",
                    config,
                    settings.work_dir / name / f"seed-{seed}",
                    subsets[name],
                )
                row = _row(stage)
                row["l1_to_teacher"] = l1_to_teacher(
                    load_model(stage.model_path())[0], teacher_models[name]
                )
                cells[name][student].append(row)
                if seed == settings.seeds[0]:
                    student_dirs[name][student] = stage.model_path()
                if not stage.cached:
                    log(
                        f"[{name} {seed}] {student}: FD {cells[name][student][-1]['frechet_distance']}"
                    )
    sizes: dict[str, Any] = {}
    grids: dict[str, str] = {}
    for name in settings.datasets:
        teacher, _ = load_model(teacher_dirs[name] / "model.safetensors")
        students = {key: load_model(path)[0] for key, path in student_dirs[name].items()}
        sizes[name] = size_and_latency(teacher, students["scratch"])
        grid = output / f"grid-{name}.png"
        save_grid(grid, {"teacher": teacher, **students}, seed=0)
        grids[name] = grid.name
    wall = time.perf_counter() - started
    report = {
        "command": settings.command_line(),
        "machine": machine() + "; shared with other jobs",
        "load_average_1_5_15_min": {
            "start": [round(value, 2) for value in load_at_start],
            "end": [round(value, 2) for value in os.getloadavg()],
        },
        "recipe": recipe(settings.datasets[0]),
        "wall_seconds_this_invocation": round(wall, 1),
        "rule": (
            f"metrics of the generator after the last epoch ({settings.epochs}) on the test "
            f"split, {len(settings.seeds)} seed(s) (mean, sample std); the teacher is one run "
            "(seed 0)"
        ),
        "seeds": settings.seeds,
        "epochs": settings.epochs,
        "train_size": settings.train_size,
        "subset_seed": SUBSET_SEED,
        "classifiers": classifier_rows,
        "teachers": teachers,
        "cells": cells,
        "sizes": sizes,
        "grids": grids,
        "summary": summarise(cells),
    }
    atomic_write_text(output / "results.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(output / "README.md", render_report(report))
    log(f"done in {wall:.0f} s; wrote {output / 'results.json'} and README.md")
    return report
