"""Optimizers and learning-rate schedules, computed per step so a resumed run needs only the step."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch

from kdistill.config import OptimizerConfig, ParameterGroupConfig, ScheduleConfig


@dataclass(frozen=True)
class ParameterGroup:
    """Parameters the optimizer steps with their own settings (``settings`` replaces the run's
    ``train.optimizer`` values it sets; ``None``: the run's own)."""

    name: str
    parameters: list[torch.nn.Parameter]
    settings: ParameterGroupConfig | None = None


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter] | Sequence[ParameterGroup], config: OptimizerConfig
) -> torch.optim.Optimizer:
    """SGD or AdamW over ``parameters``, or over parameter groups each with its own settings.
    The step is the multi-tensor one (``foreach``), which gives the same weights as torch's
    per-parameter loop, which is its CPU default, in fewer kernel calls; ``config.fused``
    takes the single fused kernel instead (last-bit differences).

    Each group records ``lr_scale``, its ``lr`` over the run's, by which the engine scales the
    scheduled learning rate for it (:func:`learning_rate_at` is linear in the base rate)."""
    items = list(parameters)
    groups: list[ParameterGroup] = [item for item in items if isinstance(item, ParameterGroup)]
    if not groups:
        groups = [ParameterGroup("default", cast(list[torch.nn.Parameter], items))]
    implementation: dict[str, Any] = {"fused": True} if config.fused else {"foreach": True}
    options = (_group_options(group, config) for group in groups)
    param_groups = [group for group in options if group["params"]]  # none left: leave it out
    if config.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=config.lr, **implementation)
    return torch.optim.SGD(param_groups, lr=config.lr, **implementation)


def _group_options(group: ParameterGroup, config: OptimizerConfig) -> dict[str, Any]:
    settings = group.settings or ParameterGroupConfig()
    lr = settings.lr if settings.lr is not None else config.lr
    weight_decay = (
        settings.weight_decay if settings.weight_decay is not None else config.weight_decay
    )
    options: dict[str, Any] = {
        "params": [parameter for parameter in group.parameters if parameter.requires_grad],
        "name": group.name,
        "lr": lr,
        "lr_scale": lr / config.lr,
        "weight_decay": weight_decay,
    }
    if config.name == "adamw":
        options["betas"] = tuple(settings.betas if settings.betas is not None else config.betas)
    else:
        momentum = settings.momentum if settings.momentum is not None else config.momentum
        options["momentum"] = momentum
        options["nesterov"] = config.nesterov and momentum > 0
    return options


def learning_rate_at(
    step: int, total_steps: int, steps_per_epoch: int, base_lr: float, config: ScheduleConfig
) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    final = base_lr * config.final_lr_fraction
    if config.name == "constant":
        return base_lr
    if config.name == "step":
        return base_lr * config.gamma ** ((step // steps_per_epoch) // config.step_epochs)
    if config.name == "exponential":
        return base_lr * config.gamma ** (step / steps_per_epoch)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final + (base_lr - final) * 0.5 * (1 + math.cos(math.pi * progress))
