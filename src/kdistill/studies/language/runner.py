"""The language benchmark's stages: the teacher, the students of every variant and seed, the
embedding student, then the measurements (latency, parameters, linear and k-NN probes).

Each training unit is a :func:`~kdistill.studies.stages.run_stage` (a ``run_once`` marker in a
folder named by its config's digest; a killed unit resumes from its checkpoint), each
measurement a ``run_once`` marker of its own, so rerunning the command only does what is
missing.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import torch

from kdistill.config import RunConfig
from kdistill.data import DataSet, load_dataset
from kdistill.engine.checkpoint import load_model
from kdistill.files import cache_dir, run_once
from kdistill.studies.language.lm import run_lm_part
from kdistill.studies.language.measures import embedding_probes, latency_and_size
from kdistill.studies.language.plan import (
    EMBEDDING,
    TEACHER,
    LanguageBenchSettings,
    student_config,
    teacher_config,
)
from kdistill.studies.language.report import write_report
from kdistill.studies.stages import StageResult, run_stage

__all__ = ["run_language_benchmark"]


class _Datasets:
    """Each text data set once per process, keyed by its ``data.text`` section."""

    def __init__(self) -> None:
        self.loaded: dict[str, DataSet] = {}

    def get(self, config: RunConfig) -> DataSet:
        key = config.data.text.model_dump_json()
        if key not in self.loaded:
            self.loaded[key] = load_dataset(
                config.data.name, cache_dir=cache_dir(), text_config=config.data.text
            )
        return self.loaded[key]


def _stage_record(stage: StageResult) -> dict[str, Any]:
    model = next(iter(stage.final))
    return {
        "run_dir": str(stage.run_dir),
        "test": stage.final[model]["test"],
        "seconds": round(stage.seconds, 1),
        "epochs": len(stage.history),
        "train_loss": stage.history[-1]["train"]["loss"] if stage.history else {},
    }


def run_language_benchmark(settings: LanguageBenchSettings) -> dict[str, Any]:
    """Train and measure everything ``settings`` asks for; write the report; return results."""
    torch.set_num_threads(1)
    work = settings.work_dir
    work.mkdir(parents=True, exist_ok=True)
    datasets = _Datasets()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "settings": {**settings.identity(), "seeds": list(settings.seeds)},
        "machine": f"{platform.machine()}, 1 thread, torch {torch.__version__}",
    }
    if settings.part in ("encoder", "all"):
        results.update(_encoder_part(settings, datasets))
    if settings.part in ("lm", "all"):
        results["lm"] = run_lm_part(settings, datasets.get, {})
    results["total_seconds_this_call"] = round(time.perf_counter() - started, 1)
    write_report(results, settings)
    return results


def _encoder_part(settings: LanguageBenchSettings, datasets: _Datasets) -> dict[str, Any]:
    work = settings.work_dir
    teacher_run = teacher_config(settings)
    teacher = run_stage(TEACHER, teacher_run, work, datasets.get(teacher_run))
    results: dict[str, Any] = {"teacher": _stage_record(teacher), "students": {}}
    for variant in settings.variants:
        for seed in settings.seeds:
            config = student_config(variant, seed, teacher.model_path(), settings)
            stage = run_stage(f"{variant}-s{seed}", config, work, datasets.get(config))
            results["students"].setdefault(variant, {})[str(seed)] = _stage_record(stage)
    if settings.embedding:
        results["embedding"] = {}
        for seed in settings.seeds:
            config = student_config(EMBEDDING, seed, teacher.model_path(), settings)
            stage = run_stage(f"{EMBEDDING}-s{seed}", config, work, datasets.get(config))
            record = _stage_record(stage)
            record["probes"] = _measure(
                work / f"probes-{EMBEDDING}-s{seed}",
                {"model": str(stage.model_path()), "what": "probes"},
                lambda stage=stage, config=config: embedding_probes(
                    stage.model_path(), datasets.get(config)
                ),
            )
            results["embedding"][str(seed)] = record
    results["latency"] = _latencies(settings, teacher, results, datasets, teacher_run)
    return results


def _measure(folder: Path, identity: dict[str, Any], compute: Any) -> dict[str, Any]:
    result, _ = run_once(folder, identity, compute)
    return result


def _latencies(
    settings: LanguageBenchSettings,
    teacher: StageResult,
    results: dict[str, Any],
    datasets: _Datasets,
    teacher_run: RunConfig,
) -> dict[str, Any]:
    """Parameters and CPU latency per article of the teacher and of one student (all
    classification students share one architecture)."""
    test = datasets.get(teacher_run).test
    files = {"teacher": teacher.model_path()}
    first = next(iter(results["students"].values()), None)
    if first:
        files["student"] = Path(next(iter(first.values()))["run_dir"]) / "student.safetensors"
        if not files["student"].exists():
            files["student"] = Path(next(iter(first.values()))["run_dir"]) / "model.safetensors"
    measured = {}
    for role, path in files.items():
        measured[role] = _measure(
            settings.work_dir / f"latency-{role}-{path.parent.name}",
            {"model": str(path), "texts": settings.latency_texts},
            lambda path=path: latency_and_size(load_model(path)[0], test, settings.latency_texts),
        )
    return measured
