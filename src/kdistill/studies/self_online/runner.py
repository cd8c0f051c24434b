"""``kdistill bench self-online``: independent training vs born-again generations vs their
ensembles vs deep mutual learning, on MNIST MLPs and Fashion-MNIST CNNs.

Per data set and seed, six units (A = the suite's main network, B = a different one):

* ``alone-A0``: A trained alone on the labels. It is at once the independent baseline, BAN's
  generation 0 (the teacher T) and the alone baseline of cohort member 0 (member 0 uses the
  run's seed, so all three are the same run; it is trained once).
* ``alone-A1`` / ``alone-B1``: member 1 of the A+A / A+B cohorts trained alone (same
  initialisation and batches as in the cohort).
* ``ban``: born-again generations 1..3 of A from ``alone-A0`` (T = 1, CE + KD weights 1, 1).
* ``dml-same`` / ``dml-mixed``: the A+A and A+B cohorts (Zhang et al. 2018, T = 1, KL weight 1).

Every unit runs once through :func:`kdistill.files.run_once` (``stage.json`` in its
folder, keyed by its config digest and data); a killed unit resumes from its epoch checkpoint,
so rerunning the same command after a kill loses little.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdistill.config import RunConfig, config_digest
from kdistill.data import DataSet, load_dataset
from kdistill.engine.checkpoint import load_model
from kdistill.files import atomic_write_text, cache_dir, run_once
from kdistill.studies.command import bench_command_line
from kdistill.studies.self_online.report import machine, render_tables, rows_for
from kdistill.studies.self_online.suites import (
    SUBSET_SEED,
    SUITES,
    ban_config,
    cohort_config,
    subset,
)
from kdistill.studies.stages import _run_config
from kdistill.teachers import evaluate_growing_ensembles


@dataclass
class SelfOnlineSettings:
    """Options of ``kdistill bench self-online`` (see the CLI help for each)."""

    profile: str = "full"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train_size: int = 10_000
    datasets: list[str] = field(default_factory=lambda: list(SUITES))
    work_dir: Path = Path("runs/bench-self-online")
    output_dir: Path = Path("runs/bench-self-online/report")

    def command_line(self) -> str:
        """The command that reproduces these settings."""
        return bench_command_line(
            "OMP_NUM_THREADS=1 kdistill bench self-online",
            self,
            {
                "profile": "profile",
                "seeds": "seeds",
                "train_size": "train-size",
                "datasets": "datasets",
                "work_dir": "work-dir",
                "output_dir": "output-dir",
            },
        )


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _unit(
    folder: Path, name: str, identity: dict[str, Any], work: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """``work()`` once for ``identity``, timed; a marker written before markers carried an
    identity is read back as it is (the folders are the same)."""

    def compute() -> dict[str, Any]:
        started = time.perf_counter()
        result = work()
        result["seconds"] = round(time.perf_counter() - started, 1)
        log(f"{name}: {result['seconds']:.0f} s, test errors {result['errors']}")
        return result

    result, _ = run_once(folder, identity, compute, legacy=lambda old: old)
    return result


def run_suite(
    data_name: str, dataset: DataSet, seed: int, epochs: int, work: Path
) -> dict[str, Any]:
    """The six units of one data set and seed (read back where finished)."""
    suite = SUITES[data_name]
    folder = work / data_name / f"seed-{seed}"
    same = cohort_config(suite, data_name, seed, epochs, folder / "dml-same", "A")
    mixed = cohort_config(suite, data_name, seed, epochs, folder / "dml-mixed", "B")
    tag = f"[{data_name} seed {seed}]"

    def identity(name: str, config: RunConfig, **extra: Any) -> dict[str, Any]:
        return {
            "unit": name,
            "config_digest": config_digest(config),
            "data": dataset.fingerprint,
            **extra,
        }

    def alone(config: RunConfig, index: int, name: str) -> dict[str, Any]:
        def work_() -> dict[str, Any]:
            fit = _run_config(
                config, resume=True, dataset=dataset, member=index, run_dir=folder / name
            )
            return {"errors": fit.errors("model")}

        return _unit(folder / name, f"{tag} {name}", identity(name, config, member=index), work_)

    results: dict[str, Any] = {
        "alone-A0": alone(same, 0, "alone-A0"),
        "alone-A1": alone(same, 1, "alone-A1"),
        "alone-B1": alone(mixed, 1, "alone-B1"),
    }

    def independent_ensemble() -> dict[str, Any]:
        models = [load_model(folder / n / "model.safetensors")[0] for n in ("alone-A0", "alone-A1")]
        ensembles = evaluate_growing_ensembles(models, {"test": dataset.test}, batch_size=200)
        return {"errors": ensembles[-1]["test"].errors}

    results["ensemble-A0-A1"] = _unit(
        folder / "ensemble-A0-A1",
        f"{tag} ensemble A0+A1",
        identity("ensemble-A0-A1", same, members=[0, 1]),
        independent_ensemble,
    )

    ban = ban_config(
        suite, data_name, seed, epochs, folder / "ban", folder / "alone-A0" / "model.safetensors"
    )

    def born_again() -> dict[str, Any]:
        result = _run_config(ban, resume=True, dataset=dataset)
        return {"errors": result.test_errors(), "ensemble_errors": result.ensemble_test_errors()}

    results["ban"] = _unit(
        folder / "ban", f"{tag} born-again gens 1-3", identity("ban", ban), born_again
    )

    def dml(config: RunConfig) -> dict[str, Any]:
        result = _run_config(config, resume=True, dataset=dataset)
        return {"errors": result.test_errors(), "cohort_errors": result.cohort["test"]["errors"]}

    results["dml-same"] = _unit(
        folder / "dml-same", f"{tag} DML A+A", identity("dml-same", same), lambda: dml(same)
    )
    results["dml-mixed"] = _unit(
        folder / "dml-mixed", f"{tag} DML A+B", identity("dml-mixed", mixed), lambda: dml(mixed)
    )
    return results


def run_self_online_benchmark(settings: SelfOnlineSettings) -> dict[str, Any] | None:
    """Run (or read back) every unit; the ``full`` profile then writes ``results.json`` and
    ``TABLES.md`` (returned as a dict), the ``timing`` profile logs the planned time only."""
    torch.set_num_threads(1)
    timing = settings.profile == "timing"
    seeds = settings.seeds[:1] if timing else settings.seeds
    work = settings.work_dir / ("timing" if timing else "full")
    started = time.perf_counter()
    log(
        f"profile {settings.profile}, seeds {seeds}, train size {settings.train_size}, work dir {work}"
    )

    results: dict[str, Any] = {}
    totals: dict[str, int] = {}
    epochs_used: dict[str, int] = {}
    for data_name in settings.datasets:
        dataset = subset(load_dataset(data_name, cache_dir=cache_dir()), settings.train_size)
        totals[data_name] = len(dataset.test)
        epochs = 1 if timing else SUITES[data_name]["epochs"]
        epochs_used[data_name] = epochs
        results[data_name] = [run_suite(data_name, dataset, s, epochs, work) for s in seeds]
    wall = time.perf_counter() - started
    stage_seconds = sum(
        value["seconds"]
        for per_seed in results.values()
        for stages in per_seed
        for value in stages.values()
    )
    log(f"done in {wall:.0f} s wall ({stage_seconds:.0f} s of stage time incl. earlier runs)")
    if timing:
        for data_name, per_seed in results.items():
            seconds = sum(v["seconds"] for v in per_seed[0].values())
            planned = SUITES[data_name]["epochs"] * seconds * len(settings.seeds)
            log(
                f"{data_name}: 1 epoch x 1 seed = {seconds:.0f} s -> planned {planned / 60:.1f} min"
            )
        return None

    report = {
        "command": settings.command_line(),
        "machine": machine(),
        "wall_seconds_this_invocation": round(wall, 1),
        "stage_seconds_total": round(stage_seconds, 1),
        "rule": f"test error after the last epoch, {len(seeds)} seeds (mean, sample std)",
        "seeds": seeds,
        "train_size": settings.train_size,
        "subset_seed": SUBSET_SEED,
        "test_size": totals,
        "epochs": epochs_used,
        "suites": {
            name: {k: v for k, v in SUITES[name].items() if k != "epochs"} for name in results
        },
        "per_seed": results,
        "tables": {
            name: rows_for(name, per_seed, totals[name]) for name, per_seed in results.items()
        },
    }
    output = settings.output_dir
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / "results.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(output / "TABLES.md", render_tables(report))
    log(f"wrote {output / 'results.json'} and TABLES.md")
    return report
