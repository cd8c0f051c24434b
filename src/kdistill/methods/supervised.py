"""``kdistill train``: one model on the true labels (a teacher, or a student's baseline)."""

from __future__ import annotations

from pathlib import Path

from kdistill.config import TrainRunConfig
from kdistill.data import DataSet, prepare_data
from kdistill.engine import FitResult, SupervisedObjective, fit
from kdistill.errors import KDistillError
from kdistill.methods.common import build_model, check_model, fit_settings, write_run_config

__all__ = ["train"]


def train(
    config: TrainRunConfig, *, resume: bool = False, dataset: DataSet | None = None
) -> FitResult:
    """Train ``config.model`` with cross-entropy on ``config.data``; ``dataset`` skips loading
    ``config.data.name``."""
    if not isinstance(config, TrainRunConfig):
        raise KDistillError(
            f"train takes a TrainRunConfig, got {type(config).__name__}: use the verb its "
            "sections belong to"
        )
    data = prepare_data(config.data, config.seed, dataset)
    settings = fit_settings(config, Path(config.output_dir))
    model = build_model(config.model, config.seed)
    check_model(settings.task, model, data, f"model {config.model.name}")
    write_run_config(config)
    settings.description = f"train {settings.run_dir.name}"
    settings.recipes = {"model": config.model.model_dump()}
    return fit(SupervisedObjective(model), data, settings, resume=resume)
