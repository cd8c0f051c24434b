"""``kdistill bench netaug``: baseline, KD, NetAug and NetAug + KD on tiny and large models.

Per data set: one teacher (seed 0), then for every seed, model and method one stage (a run
config trained once through :func:`kdistill.studies.stages.run_stage`, keyed by its digest;
a killed stage resumes from its epoch checkpoint). After each stage the saved model (for
NetAug, the base alone) is evaluated on the training subset too, in evaluation mode, so the
report has training and test error of the same model. Seeds are the outer loop: an interrupted
benchmark has whole seeds done, and ``--seeds`` with fewer seeds writes the report from them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdistill.data import DataSet, load_dataset
from kdistill.engine.checkpoint import load_model
from kdistill.files import atomic_write_text, cache_dir
from kdistill.studies.command import bench_command_line
from kdistill.studies.netaug.plan import METHODS, MODELS, cell_config, teacher_config
from kdistill.studies.netaug.report import render_report, summarise
from kdistill.studies.self_online.report import machine
from kdistill.studies.self_online.suites import SUBSET_SEED, subset
from kdistill.studies.stages import _prepare_data, run_stage
from kdistill.tasks import evaluate_classifier

DATASETS = ("mnist", "fashion-mnist")


@dataclass
class NetAugBenchSettings:
    """Options of ``kdistill bench netaug`` (see the CLI help for each)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 8
    train_size: int = 10_000
    datasets: list[str] = field(default_factory=lambda: list(DATASETS))
    models: list[str] = field(default_factory=lambda: list(MODELS))
    work_dir: Path = Path("runs/bench-netaug")
    output_dir: Path = Path("docs/results/netaug")

    def command_line(self) -> str:
        return bench_command_line(
            "OMP_NUM_THREADS=1 kdistill bench netaug",
            self,
            {
                "seeds": "seeds",
                "epochs": "epochs",
                "train_size": "train-size",
                "datasets": "datasets",
                "models": "models",
                "work_dir": "work-dir",
                "output_dir": "output-dir",
            },
        )


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _cell(name: str, config: Any, folder: Path, dataset: DataSet, tag: str) -> dict[str, Any]:
    stage = run_stage(name, config, folder, dataset)
    model, _ = load_model(stage.model_path())
    train = _prepare_data(config.data, config.seed, dataset).train
    evaluation = evaluate_classifier(model, train, 1000, "cpu")
    last = stage.history[-1] if stage.history else {}
    result = {
        "test_errors": stage.test_errors(),
        "test_total": int(stage.metrics()["total"]),
        "train_errors": int(evaluation.errors),
        "train_total": int(evaluation.total),
        "seconds": round(stage.seconds, 1),
        "epochs": len(stage.history),
        "train_meter_error_rate": last.get("train", {}).get("error_rate"),
    }
    if not stage.cached:
        log(
            f"{tag} {name}: {stage.seconds:.0f} s, test errors {result['test_errors']}, "
            f"train errors {result['train_errors']}"
        )
    return result


def run_netaug_benchmark(settings: NetAugBenchSettings) -> dict[str, Any]:
    """Train (or read back) every cell and write ``results.json`` and ``README.md``."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    log(f"seeds {settings.seeds}, epochs {settings.epochs}, train size {settings.train_size}")
    datasets = {
        name: subset(load_dataset(name, cache_dir=cache_dir()), settings.train_size)
        for name in settings.datasets
    }
    teachers: dict[str, dict[str, Any]] = {}
    teacher_paths: dict[str, Path] = {}
    for name, dataset in datasets.items():
        folder = settings.work_dir / name
        config = teacher_config(name, settings.epochs)
        stage = run_stage("teacher", config, folder, dataset)
        teacher_paths[name] = stage.model_path()
        teachers[name] = {"test_errors": stage.test_errors(), "seconds": round(stage.seconds, 1)}
        log(f"[{name}] teacher: test errors {stage.test_errors()}")
    cells: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        name: {model: {method: [] for method in METHODS} for model in settings.models}
        for name in settings.datasets
    }
    for seed in settings.seeds:
        for name, dataset in datasets.items():
            for model_key in settings.models:
                for method in METHODS:
                    config = cell_config(
                        name, model_key, method, seed, settings.epochs, teacher_paths[name]
                    )
                    folder = settings.work_dir / name / f"seed-{seed}"
                    cells[name][model_key][method].append(
                        _cell(f"{model_key}-{method}", config, folder, dataset, f"[{name} {seed}]")
                    )
    wall = time.perf_counter() - started
    report = {
        "command": settings.command_line(),
        "machine": machine() + "; shared with other jobs",
        "wall_seconds_this_invocation": round(wall, 1),
        "rule": (
            f"errors of the model after the last epoch ({settings.epochs}), "
            f"{len(settings.seeds)} seeds (mean, sample std); training error on the training "
            "subset in evaluation mode"
        ),
        "seeds": settings.seeds,
        "epochs": settings.epochs,
        "train_size": settings.train_size,
        "subset_seed": SUBSET_SEED,
        "teachers": teachers,
        "cells": cells,
        "summary": summarise(cells),
    }
    output = settings.output_dir
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / "results.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(output / "README.md", render_report(report))
    log(f"done in {wall:.0f} s; wrote {output / 'results.json'} and README.md")
    return report
