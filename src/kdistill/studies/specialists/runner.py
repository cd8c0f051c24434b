"""The specialists study (Hinton et al. 2015, section 5) on MNIST-100, seed by seed: the
generalist (a cached stage), the class sets, the specialists (one resumable unit each, in
``workers`` processes), the combined test predictions (Tables 3 and 4) and the single model
distilled from the ensemble; then the report. Every unit is a :func:`kdistill.files.run_once`
marker in ``work_dir``, so a killed run redoes only what had not finished.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import torch

from kdistill.config import SpecialistsConfig, TrainRunConfig, config_digest
from kdistill.data import DataSet, TrainingData, load_dataset
from kdistill.engine import load_model, under_torchrun
from kdistill.engine.checkpoint import load_tensors, save_tensors
from kdistill.files import cache_dir, run_once
from kdistill.methods.common import file_sha256
from kdistill.reports.specialists import write_report
from kdistill.studies.hinton_mnist.analysis import mean_std
from kdistill.studies.specialists.evaluation import (
    ensemble_unit,
    method_identity,
    model_cards,
    model_logits,
)
from kdistill.studies.specialists.plan import (
    generalist_config,
    load_profile,
    method_config,
    train_section,
)
from kdistill.studies.stages import _prepare_data, run_stage, write_report_once
from kdistill.studies.stages import specialists_method as sp
from kdistill.tasks import evaluate_logits, predict_logits


def _clusters(
    work_dir: Path, seed: int, generalist: Path, data: TrainingData, method: SpecialistsConfig
) -> dict[str, Any]:
    """K-means on the columns of the covariance of the generalist's predictions on the split
    carved from the training data; no label is read to find the groups (the confusion matrix
    on the same split is kept only to show what the groups are)."""
    identity = {
        "generalist_sha256": file_sha256(generalist),
        **method_identity(
            method,
            "num_specialists",
            "classes_per_specialist",
            "overlap",
            "normalize_columns",
            "kmeans_iterations",
            "kmeans_batch_size",
        ),
        "seed": seed,
    }

    def compute() -> dict[str, Any]:
        model, _ = load_model(generalist)
        split = data.eval_splits["validation"]
        logits = predict_logits(model, split)
        covariance = sp.prediction_covariance(torch.softmax(logits, dim=1))
        groups = sp.class_groups(
            covariance,
            method.num_specialists,
            classes_per_group=method.classes_per_specialist,
            overlap=method.overlap,
            normalize=method.normalize_columns,
            seed=seed,
            batch_size=method.kmeans_batch_size,
            iterations=method.kmeans_iterations,
        )
        confusion = evaluate_logits(logits, split.labels, data.num_classes).confusion
        return {
            "groups": groups,
            "split": "validation (carved from the training pairs)",
            "examples": len(split),
            "confusion_inside": sp.confusion_inside_groups(confusion, groups),
            "confusion": confusion.tolist(),
        }

    result, _ = run_once(work_dir / f"clusters-s{seed}", identity, compute)
    return result


def _specialist_jobs(
    folder: Path,
    groups: list[list[int]],
    generalist: Path,
    config: TrainRunConfig,
    specialist_epochs: int,
    method: SpecialistsConfig,
) -> list[Any]:
    train = train_section("specialist", specialist_epochs)
    return [
        sp.SpecialistJob(
            index=index,
            classes=group,
            generalist=str(generalist),
            config=config.model_copy(
                update={"train": train, "output_dir": str(folder / f"{index:02d}")}
            ),
            batch_share=method.batch_share,
            shift_rule=method.dustbin_shift,
        )
        for index, group in enumerate(groups)
    ]


def _train_jobs(folder: Path, jobs: list[Any], workers: int) -> dict[str, Any]:
    """Train the jobs; the wall time is kept from the invocation that finished them."""
    identity = {"jobs": [job.identity() for job in jobs], "workers": workers}

    def compute() -> dict[str, Any]:
        results, seconds = sp.train_specialists(jobs, workers)
        return {"wall_seconds": seconds, "workers": workers, "specialists": results}

    # Another --workers count reuses the trained specialists (each has its own marker).
    result, _ = run_once(folder, identity, compute, marker="specialists.json", must_match={"jobs"})
    return result


def _distilled(
    work_dir: Path,
    seed: int,
    generalist: Path,
    specialists: list[Path],
    groups: list[list[int]],
    config: TrainRunConfig,
    data: TrainingData,
    dataset: DataSet,
    epochs: int,
    method: SpecialistsConfig,
) -> dict[str, Any]:
    """Beyond the paper: a model of the generalist's size trained on the ensemble's combined
    distribution over the training pairs (computed once, kept in ``targets.safetensors``)."""
    folder = work_dir / f"distilled-s{seed}"
    config = config.model_copy(
        update={"train": train_section("distilled", epochs), "output_dir": str(folder)}
    )
    identity = {
        "generalist_sha256": file_sha256(generalist),
        "specialists_sha256": [file_sha256(path) for path in specialists],
        "config_digest": config_digest(config),
        **method_identity(
            method,
            "top_n",
            "inference_steps",
            "inference_lr",
            "distill_temperature",
            "distill_soft_target_weight",
            "distill_hard_target_weight",
        ),
    }
    targets_path = folder / "targets.safetensors"

    def targets() -> torch.Tensor:
        key = {k: v for k, v in identity.items() if k != "config_digest"}
        if targets_path.exists():
            tensors, saved = load_tensors(targets_path)
            if saved.get("identity") == key:
                return tensors["log_q"]
        logits = model_logits([generalist, *specialists], data.train)
        log_q, _ = sp.combined_log_probs(
            logits[0],
            logits[1:],
            groups,
            top_n=method.top_n,
            steps=method.inference_steps,
            lr=method.inference_lr,
        )
        save_tensors(targets_path, {"log_q": log_q}, {"identity": key})
        return log_q

    def compute() -> dict[str, Any]:
        started = time.perf_counter()
        result = sp.distill_combined(
            config,
            targets(),
            temperature=method.distill_temperature,
            soft_target_weight=method.distill_soft_target_weight,
            hard_target_weight=method.distill_hard_target_weight,
            dataset=dataset,
        )
        test = result.final["student"]["test"]
        return {
            "test_accuracy": test["accuracy"],
            "test_errors": test["errors"],
            "epochs": len(result.history),
            "seconds": time.perf_counter() - started,
            "model_path": str(folder / "student.safetensors"),
        }

    result, _ = run_once(folder, identity, compute)
    return result


def run(
    profile: str = "quick",
    output_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
    workers: int = 1,
) -> dict:
    """Run every unit of the study for the profile's seeds, then write the report."""
    settings = load_profile(profile)
    work_dir = Path(work_dir or f"runs/specialists-{profile}")
    output_dir = Path(output_dir or f"docs/results/specialists/{profile}")
    started = time.perf_counter()
    # One thread in this process too: the machine is shared, and worker processes use one each.
    torch.set_num_threads(1)
    method = method_config()
    seeds: list[int] = settings["seeds"]
    # MNIST-100 as shipped; generalist.yaml's data.name (idx:DIR, npz:FILE) runs it on any
    # many-class data set, with model.kwargs matched to it.
    data_name = generalist_config(seeds[0], 1).data.name
    dataset = load_dataset(data_name, cache_dir=cache_dir())
    per_seed: dict[str, Any] = {}
    cards = None
    timing: dict[str, Any] = {}
    for seed in seeds:
        config = generalist_config(seed, settings["generalist_epochs"])
        stage = run_stage(f"generalist-s{seed}", config, work_dir, dataset)
        generalist = stage.model_path()
        data = _prepare_data(config.data, config.seed, dataset)
        clusters = _clusters(work_dir, seed, generalist, data, method)
        groups = clusters["groups"]
        folder = work_dir / f"specialists-s{seed}"
        jobs = _specialist_jobs(
            folder, groups, generalist, config, settings["specialist_epochs"], method
        )
        trained = _train_jobs(folder, jobs, workers)
        specialists = [job.run_dir / "specialist.safetensors" for job in jobs]
        ensemble = ensemble_unit(work_dir, seed, generalist, specialists, groups, data, method)
        distilled = _distilled(
            work_dir,
            seed,
            generalist,
            specialists,
            groups,
            config,
            data,
            dataset,
            settings["distilled_epochs"],
            method,
        )
        per_seed[str(seed)] = {
            "generalist_seconds": stage.seconds,
            "generalist_test": {
                k: v for k, v in stage.metrics("test").items() if k in ("errors", "accuracy")
            },
            "clusters": clusters,
            "specialists": trained,
            "ensemble": ensemble,
            "distilled": distilled,
        }
        if cards is None:
            cards = model_cards(
                generalist, specialists, Path(distilled["model_path"]), groups, data, method
            )
            # The 1-versus-2 worker timing is about worker processes, which torchrun replaces.
            count = 0 if under_torchrun() else min(settings.get("timing_specialists", 0), len(jobs))
            for timing_workers in (1, 2) if count else ():
                timed = work_dir / f"timing-w{timing_workers}"
                timing_jobs = _specialist_jobs(
                    timed,
                    groups[:count],
                    generalist,
                    config,
                    settings["specialist_epochs"],
                    method,
                )
                timing[str(timing_workers)] = _train_jobs(timed, timing_jobs, timing_workers)[
                    "wall_seconds"
                ]
            timing["specialists"] = count

    def stat(path: tuple[str, ...]) -> dict[str, Any]:
        values = []
        for seed in seeds:
            node: Any = per_seed[str(seed)]
            for key in path:
                node = node[key]
            values.append(float(node))
        return mean_std(values)

    summary = {
        "profile": profile,
        "settings": settings,
        "method": method.model_dump(),
        "workers": workers,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads_per_process": 1,
        },
        "data": {"name": dataset.name, "train": len(dataset.train), "test": len(dataset.test)},
        "rule": "last epoch of every model, mean and sample std over seeds",
        "table_3": {
            "generalist_accuracy": stat(("ensemble", "generalist", "accuracy")),
            "generalist_conditional": stat(("ensemble", "generalist", "conditional_accuracy")),
            "ensemble_accuracy": stat(("ensemble", "ensemble", "accuracy")),
            "ensemble_conditional": stat(("ensemble", "ensemble", "conditional_accuracy")),
            "distilled_accuracy": stat(("distilled", "test_accuracy")),
        },
        "seeds": per_seed,
        "model_cards": cards,
        "timing": timing,
        "total_seconds": time.perf_counter() - started,
        # What the units took when they ran (a rerun reads them back in seconds).
        "work_seconds": sum(
            outcome["generalist_seconds"]
            + outcome["specialists"]["wall_seconds"]
            + outcome["ensemble"]["test_seconds"]
            + outcome["distilled"]["seconds"]
            for outcome in per_seed.values()
        )
        + sum(value for key, value in timing.items() if key != "specialists"),
    }
    summary["report"] = str(write_report_once(write_report, summary, output_dir))
    return summary
