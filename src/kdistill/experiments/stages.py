"""Stages of a reproduction: one config each, run once and cached by the config's content.

A stage's folder is named after a digest of its config (``kdistill.config.config_digest``:
everything that changes what is trained), so a changed config never reuses stale results, a
finished stage is read back instead of re-trained, and a stage that was killed resumes from its
last epoch checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdistill import methods
from kdistill.config import RunConfig, config_digest, dump_config
from kdistill.data import DataSet
from kdistill.files import atomic_write_text

SUMMARY_NAME = "stage.json"


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
    summary_path = run_dir / SUMMARY_NAME
    if summary_path.exists():
        saved = json.loads(summary_path.read_text())
        return StageResult(
            name, run_dir, saved["final"], saved["history"], saved["seconds"], cached=True
        )
    started = time.perf_counter()
    result = methods.run(config, resume=True, dataset=dataset)
    seconds = time.perf_counter() - started
    atomic_write_text(run_dir / "config.yaml", dump_config(config))
    atomic_write_text(
        summary_path,
        json.dumps(
            {"name": name, "final": result.final, "history": result.history, "seconds": seconds}
        )
        + "\n",
    )
    line = f"[{name}] {seconds:.0f} s, test errors {next(iter(result.final.values()))['test']['errors']}"
    print(line, flush=True)
    if log is not None:
        log.append(line)
    return StageResult(name, run_dir, result.final, result.history, seconds, cached=False)
