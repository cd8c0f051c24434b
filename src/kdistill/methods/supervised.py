"""``kdistill train``: one model on the true labels (a teacher, or a student's baseline)."""

from __future__ import annotations

from pathlib import Path

from kdistill.config import TrainRunConfig
from kdistill.data import DataSet, prepare_data
from kdistill.engine import FitResult, SupervisedObjective, fit
from kdistill.errors import KDistillError
from kdistill.methods.common import build_model, check_model, claim_run_folder, fit_settings

__all__ = ["train"]


def train(
    config: TrainRunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    dataset: DataSet | None = None,
) -> FitResult:
    """Train ``config.model`` with cross-entropy on ``config.data``; ``dataset`` skips loading
    ``config.data.name``. A folder holding another run is refused unless ``resume`` (the same
    config; ``train.epochs`` may be raised) or ``overwrite``."""
    if not isinstance(config, TrainRunConfig):
        raise KDistillError(
            f"train takes a TrainRunConfig, got {type(config).__name__}: use the verb its "
            "sections belong to"
        )
    data = prepare_data(config.data, config.seed, dataset)
    settings = fit_settings(config, Path(config.output_dir))
    model = build_model(config.model, config.seed)
    check_model(settings.task, model, data, f"model {config.model.name}")
    settings.description = f"train {settings.run_dir.name}"
    settings.recipes = {"model": config.model.model_dump()}
    with claim_run_folder(config, resume=resume, overwrite=overwrite, may_raise=("train.epochs",)):
        objective = SupervisedObjective(model, loss=settings.task.supervised_loss)
        return fit(objective, data, settings, resume=resume)
