"""Early stopping: end a run before ``train.epochs`` once a metric on an evaluated split (the
validation split carved from the training data, never the test set) has not improved for
``patience`` epochs. Decided from the evaluations in the run's history, so a resumed run stops
exactly where the uninterrupted one did."""

from __future__ import annotations

from typing import Any

from kdistill.config import EarlyStoppingConfig
from kdistill.data import TrainingData
from kdistill.errors import KDistillError

__all__ = ["early_stopping_target", "epochs_without_improvement", "patience_ran_out"]


def early_stopping_target(
    rule: EarlyStoppingConfig | None, models: list[str], data: TrainingData
) -> str | None:
    """The evaluated model whose metric ``rule`` watches (``None`` without a rule); a one-line
    error when the split or model it names is not evaluated in this run."""
    if rule is None:
        return None
    if rule.split not in data.eval_splits:
        fix = (
            "set data.validation_size (examples carved from the training set)"
            if rule.split == "validation"
            else f"use one of {', '.join(data.eval_splits)}"
        )
        raise KDistillError(
            f"train.early_stopping.split={rule.split!r} is not evaluated in this run: {fix}"
        )
    if rule.model is not None and rule.model not in models:
        raise KDistillError(
            f"train.early_stopping.model={rule.model!r} is not evaluated: use one of "
            f"{', '.join(models)}"
        )
    return rule.model or models[0]


def epochs_without_improvement(values: list[float], mode: str) -> int:
    """Epochs since the best of ``values`` (one per epoch; the first best on ties)."""
    if not values:
        return 0
    best = min(values) if mode == "min" else max(values)
    return len(values) - 1 - values.index(best)


def patience_ran_out(
    history: list[dict[str, Any]], rule: EarlyStoppingConfig, model: str, task: str
) -> bool:
    """Whether ``rule.patience`` epochs have passed since ``model``'s best ``rule.metric`` on
    ``rule.split`` among the evaluated epochs of ``history``."""
    if not history:
        return False
    try:
        values = [float(record[model][rule.split][rule.metric]) for record in history]
    except KeyError:
        figures = sorted(history[-1].get(model, {}).get(rule.split, {}))
        raise KDistillError(
            f"train.early_stopping.metric={rule.metric!r}: the {task} task's evaluation has no "
            f"such figure (it has {', '.join(figures) or 'none'})"
        ) from None
    return epochs_without_improvement(values, rule.mode) >= rule.patience
