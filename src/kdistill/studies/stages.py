"""The one harness of every study: run a unit of work once, keep its result as a JSON marker.

:func:`run_once` is the mechanism: a unit is identified by a JSON-able ``identity`` dict; its
result is written atomically to a marker file (``{"identity": ..., "result": ...}``) only after
the unit finished, so a killed unit leaves no marker and runs again (the training units resume
from their epoch checkpoints). :func:`run_stage` is the same for a unit that is one run config:
its folder is named by the config's digest (:func:`kdistill.config.config_digest`), so a changed
config never reuses stale results.

:func:`_run_config` is the one call from the studies into training, and
:data:`specialists_method` (generalist + specialists, whose units are not one run config each)
the one other; nothing else in ``kdistill.studies`` imports ``kdistill.methods``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdistill import methods
from kdistill.config import (
    BornAgainRunConfig,
    DataConfig,
    MutualRunConfig,
    RunConfig,
    config_digest,
    dump_config,
)
from kdistill.data import DataSet, TrainingData, prepare_data
from kdistill.engine import is_main_process, wait_for_main
from kdistill.files import atomic_write_text, run_once
from kdistill.methods import specialists as specialists_method

__all__ = [
    "StageResult",
    "legacy_stage_digest",
    "run_stage",
    "specialists_method",
    "stage_dir",
    "write_report_once",
]

# --- The adapter: every call from the studies into training -----------------------------------


def _run_config(
    config: RunConfig,
    *,
    resume: bool,
    dataset: DataSet,
    member: int | None = None,
    run_dir: Path | None = None,
) -> Any:
    """Train what ``config`` describes, in ``config.output_dir``.

    ``member`` given: cohort member ``member`` of ``config.mutual`` trained alone, in
    ``run_dir`` (:func:`kdistill.methods.train_alone`). Otherwise by the config's section:
    ``born_again`` (generations), ``mutual`` (the cohort, without its alone baselines),
    ``distill`` or plain training. Returns the callee's result object.
    """
    if member is not None:
        assert isinstance(config, MutualRunConfig), "only cohort members train alone"
        return methods.train_alone(config, member, run_dir, resume=resume, dataset=dataset)
    if isinstance(config, BornAgainRunConfig):
        return methods.run_born_again(config, resume=resume, dataset=dataset)
    if isinstance(config, MutualRunConfig):
        return methods.run_mutual(config, resume=resume, with_baselines=False, dataset=dataset)
    return methods.run(config, resume=resume, dataset=dataset)


def _prepare_data(config: DataConfig, seed: int, dataset: DataSet) -> TrainingData:
    """The splits a run of ``config`` trains and evaluates on (validation carved, classes kept)."""
    return prepare_data(config, seed, dataset)


# --- The harness ------------------------------------------------------------------------------


# --- A stage: one run config ------------------------------------------------------------------


@dataclass
class StageResult:
    name: str
    run_dir: Path
    final: dict[str, Any]
    history: list[dict[str, Any]]
    seconds: float
    cached: bool

    def model_path(self) -> Path:
        name = "student" if "student" in self.final else "model"
        return self.run_dir / f"{name}.safetensors"

    def test_errors(self) -> int:
        return int(next(iter(self.final.values()))["test"]["errors"])

    def metrics(self, split: str = "test") -> dict[str, Any]:
        return next(iter(self.final.values()))[split]


def legacy_stage_digest(config: RunConfig) -> str:
    """The digest stage folders were named by before they moved to
    :func:`kdistill.config.config_digest`: the whole config without unset sections, so any
    new field with a default changed it. Kept only to find folders made by that version."""
    content = config.model_dump(mode="json", exclude_none=True)
    content.pop("output_dir", None)
    if content.get("task") == "classification":
        content.pop("task")  # added after this digest was retired
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:10]


def stage_dir(name: str, config: RunConfig, work_dir: Path) -> Path:
    """``<work_dir>/<name>-<digest>``; a folder left by the older digest is used as it is (a
    finished stage is reused, a killed one resumes there), so upgrading never re-trains."""
    current = work_dir / f"{name}-{config_digest(config)}"
    legacy = work_dir / f"{name}-{legacy_stage_digest(config)}"
    if not current.exists() and legacy.exists():
        return legacy
    return current


def run_stage(
    name: str, config: RunConfig, work_dir: Path, dataset: DataSet, log: list[str] | None = None
) -> StageResult:
    """Train (or distil, if the config has a ``distill`` section) unless already done."""
    run_dir = stage_dir(name, config, work_dir)
    config = config.model_copy(update={"output_dir": str(run_dir)})

    def compute() -> dict[str, Any]:
        started = time.perf_counter()
        result = _run_config(config, resume=True, dataset=dataset)
        seconds = time.perf_counter() - started
        test = next(iter(result.final.values()))["test"]
        shown = f"test errors {test['errors']}" if "errors" in test else f"test mAP {test['map']}"
        line = f"[{name}] {seconds:.0f} s, {shown}"
        if is_main_process():  # under torchrun, rank 0 writes and prints for every process
            atomic_write_text(run_dir / "config.yaml", dump_config(config))
            print(line, flush=True)
        if log is not None:
            log.append(line)
        return {"name": name, "final": result.final, "history": result.history, "seconds": seconds}

    # The folder is named by the digest, so a marker from before identities (``{"name", "final",
    # "history", "seconds"}``) belongs to this config.
    identity = {"stage": name, "config_digest": config_digest(config)}
    saved, cached = run_once(run_dir, identity, compute, legacy=lambda old: old)
    return StageResult(
        name, run_dir, saved["final"], saved["history"], saved["seconds"], cached=cached
    )


def write_report_once(
    write: Callable[[dict[str, Any], Path], Path], summary: dict[str, Any], output_dir: Path
) -> Path:
    """``write(summary, output_dir)`` in rank 0 alone: under torchrun every process computed
    the same summary, and the others wait until the report is there. Returns its path."""
    report = write(summary, output_dir) if is_main_process() else output_dir / "README.md"
    wait_for_main()
    return report
