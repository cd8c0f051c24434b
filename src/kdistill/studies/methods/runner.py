"""``kdistill bench methods``: every distillation method on one small, measured footing.

On each data set (Fashion-MNIST, MNIST) one CNN teacher is trained once; then, for every
seed, the same small CNN student is trained with the same epochs, batches and optimizer as

* ``student``: hard labels only (the baseline, and the unit of the epoch-time ratio),
* ``kd``: Hinton et al.'s soft targets plus a little of the hard labels,
* ``<method>``: the method's term(s) plus the hard labels, no soft targets ("alone"),
* ``kd+<method>``: the KD objective plus the method's term(s).

Every cell is one run config (the method's terms from ``configs/methods/<method>.yaml``) run
once through :func:`kdistill.files.run_once`: a finished (data set, variant, seed)
cell leaves a JSON marker in the work directory, and a killed benchmark re-run with the same
options reads those back and resumes the unfinished run from its last epoch checkpoint. The
reported figure is the test accuracy after the last epoch (no model selection), mean and
sample standard deviation over seeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from kdistill.config import RunConfig, config_digest
from kdistill.data import DataSet
from kdistill.engine.checkpoint import load_tensors
from kdistill.files import atomic_write_text, run_once
from kdistill.studies.methods.catalogue import methods
from kdistill.studies.methods.report import README_NAME, RESULTS_NAME, render_report
from kdistill.studies.methods.settings import (
    KD_HARD_WEIGHT,
    KD_SOFT_WEIGHT,
    KD_TEMPERATURE,
    BenchSettings,
    bench_dataset,
    teacher_config,
    variant_config,
)
from kdistill.studies.methods.stats import summarise
from kdistill.studies.stages import _run_config


def run_digest(config: RunConfig, dataset: DataSet) -> str:
    """A digest of everything that changes a run's numbers: the config (see
    :func:`kdistill.config.config_digest`) and the exact data."""
    content = f"{config_digest(config)}|{dataset.fingerprint}"
    return hashlib.sha256(content.encode()).hexdigest()[:10]


def _epoch_seconds(run_dir: Path, history: list[dict[str, Any]]) -> list[float]:
    """Training seconds of every epoch, FitNet's hint stage (if any) first."""
    seconds: list[float] = []
    hint_log = run_dir / "hint-stage" / "metrics.jsonl"
    if hint_log.exists():
        for line in hint_log.read_text().splitlines():
            if line:
                seconds.append(float(json.loads(line)["seconds"]))
    return seconds + [float(record["seconds"]) for record in history]


def run_cell(
    settings: BenchSettings,
    dataset: DataSet,
    variant: str,
    seed: int,
    teacher: Path | None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """One (data set, variant, seed) run, or its JSON record if it already finished."""
    base = settings.work_dir / dataset.name
    if variant == "teacher":
        config = teacher_config(settings, dataset.name, Path("."))
    else:
        assert teacher is not None
        config = variant_config(settings, dataset.name, variant, seed, teacher, Path("."))
    digest = run_digest(config, dataset)
    run_dir = base / "runs" / variant / f"seed-{seed}-{digest}"
    config = config.model_copy(update={"output_dir": str(run_dir)})

    def compute() -> dict[str, Any]:
        started_at = time.time()
        started = time.perf_counter()
        result = _run_config(config, resume=True, dataset=dataset)
        elapsed = time.perf_counter() - started
        model_name = next(iter(result.final))
        model_file = run_dir / f"{model_name}.safetensors"
        test = result.final[model_name]["test"]
        record = {
            "dataset": dataset.name,
            "variant": variant,
            "seed": seed,
            "digest": digest,
            "test_accuracy": 1.0 - test["errors"] / test["total"],
            "test_errors": test["errors"],
            "test_total": test["total"],
            "epoch_seconds": _epoch_seconds(run_dir, result.history),
            "run_seconds": round(elapsed, 2),
            "started_at": started_at,
            "finished_at": time.time(),
            "threads": settings.threads,
            "model_file": str(model_file),
            "first_epoch_losses": result.history[0]["train"]["loss"] if result.history else None,
            "teacher_cache": load_tensors(model_file)[1].get("teacher_cache"),
        }
        log(
            f"[{dataset.name} {variant} seed {seed}] {elapsed:.1f} s, "
            f"test accuracy {100 * record['test_accuracy']:.2f}%"
        )
        return record

    # A record of another digest (changed options) is recomputed into its own run folder; a
    # record from before markers held an identity is flat, with its digest in it.
    record, _ = run_once(
        base / "results" / variant,
        {"dataset": dataset.name, "variant": variant, "seed": seed, "digest": digest},
        compute,
        marker=f"seed-{seed}.json",
        must_match=(),
        legacy=lambda old: old if old.get("digest") == digest else None,
    )
    return record


def machine_description(threads: int | None) -> dict[str, Any]:
    """CPU model, core count, torch version and the thread count the runs used."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": threads if threads is not None else torch.get_num_threads(),
    }


def run_methods_benchmark(
    settings: BenchSettings, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run (or read back) every cell, then write ``results.json`` and ``README.md``."""
    settings.check()
    started = time.perf_counter()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    records: list[dict[str, Any]] = []
    teachers: dict[str, dict[str, Any]] = {}
    seeds = list(range(settings.seeds))
    variants = settings.variants()
    total = len(settings.datasets) * (1 + len(seeds) * len(variants))
    done = 0
    for name in settings.datasets:
        dataset = bench_dataset(name, settings.train_size, settings.test_size)
        teacher = run_cell(settings, dataset, "teacher", 0, None, log)
        teachers[name] = teacher
        done += 1
        for seed in seeds:
            for variant in variants:
                records.append(
                    run_cell(settings, dataset, variant, seed, Path(teacher["model_file"]), log)
                )
                done += 1
        log(f"[{name}] done ({done}/{total} runs, {time.perf_counter() - started:.0f} s so far)")
    wall = time.perf_counter() - started
    everything = [*teachers.values(), *records]
    results = {
        "benchmark": "methods",
        "command": settings.command_line(),
        "rule": "test accuracy after the last epoch; mean and sample std over seeds",
        "settings": {
            **asdict(settings),
            "output": str(settings.output),
            "work_dir": str(settings.work_dir),
            "kd": {
                "temperature": KD_TEMPERATURE,
                "soft_target_weight": KD_SOFT_WEIGHT,
                "hard_target_weight": KD_HARD_WEIGHT,
            },
        },
        "methods": {
            key: {"label": method.label, "terms": method.term_entries(), "source": method.source}
            for key, method in methods().items()
            if key in settings.methods
        },
        "machine": machine_description(settings.threads),
        "wall_seconds_this_invocation": round(wall, 1),
        "wall_seconds_first_to_last_run": round(
            max(record.get("finished_at", 0.0) for record in everything)
            - min(record.get("started_at", 0.0) for record in everything),
            1,
        ),
        "run_seconds_total": round(sum(record["run_seconds"] for record in everything), 1),
        "teachers": teachers,
        "summary": summarise(records, teachers),
        "runs": records,
    }
    settings.output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(settings.output / RESULTS_NAME, json.dumps(results, indent=2) + "\n")
    atomic_write_text(settings.output / README_NAME, render_report(results))
    log(f"wrote {settings.output / README_NAME} and {settings.output / RESULTS_NAME}")
    return results
