"""What every method does before it calls the engine: write the config, build and check the
models, and say where and how the fit runs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdistill.config import ModelConfig, RunConfig, dump_config
from kdistill.data import TrainingData
from kdistill.engine import FitSettings, is_main_process, resolve_device
from kdistill.engine.checkpoint import load_tensors
from kdistill.engine.trainer import CHECKPOINT_NAME
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text
from kdistill.models import create_model
from kdistill.tasks import Task, create_task

__all__ = [
    "build_model",
    "check_model",
    "derived_seed",
    "file_sha256",
    "fit_settings",
    "resumable_checkpoint",
    "write_run_config",
]


def write_run_config(config: RunConfig) -> Path:
    """Create ``config.output_dir`` and write ``config.yaml`` there; returns the folder."""
    run_dir = Path(config.output_dir)
    if is_main_process():  # under torchrun, rank 0 writes for every process
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", dump_config(config))
    return run_dir


def fit_settings(
    config: RunConfig, run_dir: Path, *, seed: int | None = None, **options: Any
) -> FitSettings:
    """:class:`FitSettings` from a run config: its training section, seed and task (the
    device and the task are checked here, before a method writes anything)."""
    resolve_device(config.train.device)
    return FitSettings(
        train=config.train,
        run_dir=run_dir,
        seed=config.seed if seed is None else seed,
        task=create_task(config.task),
        **options,
    )


def build_model(model: ModelConfig, seed: int) -> nn.Module:
    """A freshly initialised model, its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return create_model(model.name, **model.kwargs)


def check_model(task: Task, model: nn.Module, data: TrainingData, role: str) -> int:
    """Run ``model`` on one training example (one forward pass, the only one before training);
    returns its number of outputs after checking it covers the data set's classes."""
    outputs = task.probe(model, data.train, role)
    if outputs < data.num_classes:
        name = data.dataset.name if data.dataset is not None else "the training data"
        raise KDistillError(
            f"{name} has {data.num_classes} classes but {role} outputs {outputs}: set "
            f"model.kwargs.num_classes ≥ {data.num_classes}"
        )
    return outputs


def derived_seed(seed: int, tag: str) -> int:
    """A seed for one model of a multi-model run, derived by hashing ``(seed, tag)``.

    Generations and cohort members need distinct initialisations; ``seed + k`` would make
    generation 1 of seed 0 start exactly like generation 0 of seed 1, correlating the
    "independent" seeds of a benchmark, while a hash does not.
    """
    digest = hashlib.sha256(f"kdistill:{tag}:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resumable_checkpoint(run_dir: Path, identity: Mapping[str, Any]) -> bool:
    """Whether ``run_dir`` holds a fit checkpoint that continues the run ``identity`` names.

    ``identity`` is the ``metadata`` a method gives :func:`fit`. A checkpoint from a
    different config is the user's mistake and raises; one that differs otherwise (e.g. a
    generation whose teacher has since been retrained) is stale and is trained afresh.
    """
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return False
    _, saved = load_tensors(path)
    if saved.get("config_digest") != identity.get("config_digest"):
        raise KDistillError(
            f"{path} was written with a different config: resume with the same config, or "
            "use a new output_dir"
        )
    return all(saved.get(key) == value for key, value in identity.items())
