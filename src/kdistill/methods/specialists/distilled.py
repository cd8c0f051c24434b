"""Beyond the paper (which never finished it): one model of the generalist's size distilled
from the generalist + specialists ensemble, the combined distribution q as its soft targets.

The targets are computed once for every training example (``log q``, cached on disk by the
caller) and read by the :class:`~kdistill.methods.Distiller` through its cached-teacher
logits, so the student trains in the engine's one loop like any distilled student:
``T^2 CE(q at T, student at T) + hard_target_weight CE(labels, student)``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdistill.config import TrainRunConfig, config_digest
from kdistill.data import DataSet, prepare_data
from kdistill.engine import FitResult, fit
from kdistill.errors import KDistillError
from kdistill.methods.common import (
    build_model,
    check_model,
    derived_seed,
    fit_settings,
    write_run_config,
)
from kdistill.methods.distill import Distiller
from kdistill.methods.terms import build_terms

__all__ = ["distill_combined"]


def distill_combined(
    config: TrainRunConfig,
    targets: torch.Tensor,
    *,
    temperature: float,
    soft_target_weight: float = 1.0,
    hard_target_weight: float = 0.1,
    dataset: DataSet | None = None,
    resume: bool = True,
) -> FitResult:
    """Train ``config.model`` on ``targets`` (``log q`` ``[N_train, C]``, one row per example
    of the run's training split, in its order) and the labels, in ``config.output_dir``."""
    data = prepare_data(config.data, config.seed, dataset)
    if targets.shape != (len(data.train), data.num_classes):
        raise KDistillError(
            f"combined targets are {list(targets.shape)}, the training split needs "
            f"[{len(data.train)}, {data.num_classes}]"
        )
    # config.seed carves the generalist's validation split; the student draws its own seed.
    seed = derived_seed(config.seed, "distilled")
    settings = fit_settings(config, Path(config.output_dir), seed=seed)
    student = build_model(config.model, seed)
    check_model(settings.task, student, data, f"student {config.model.name}")
    terms = build_terms(
        temperature=temperature,
        soft_target_weight=soft_target_weight,
        hard_target_weight=hard_target_weight,
    )
    # log q is a valid logit vector: softmax(log q / T) is q at temperature T.
    objective = Distiller(student, None, terms, cached_teacher_logits=targets[None].float())
    write_run_config(config)
    settings.description = "distilled from the ensemble"
    settings.recipes = {"student": config.model.model_dump()}
    settings.metadata = {"config_digest": config_digest(config), "temperature": temperature}
    return fit(objective, data, settings, resume=resume)
