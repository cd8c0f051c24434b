"""What :func:`kdistill.engine.fit` is given (:class:`FitSettings`) and what it carries from
step to step (:class:`LoopState`, with :class:`Partial` for an epoch stopped between steps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdistill.config import TrainConfig
from kdistill.engine.distributed import Processes
from kdistill.engine.objective import Objective, ObjectiveOutput
from kdistill.tasks import BatchSource, ClassificationTask, Task

__all__ = ["FitSettings", "LoopState", "Partial"]


@dataclass
class FitSettings:
    """Where and how one :func:`fit` runs, besides the objective and the data.

    ``metadata`` identifies the run (procedure, generation, config digest ...); it is saved in
    the checkpoint and in every model file. ``recipes`` says how to rebuild each evaluated
    model (``{"student": {"name": "mlp", "kwargs": {...}}}``) so its file loads by path.
    """

    train: TrainConfig
    run_dir: Path
    seed: int = 0
    task: Task = field(default_factory=ClassificationTask)
    description: str = "train"
    recipes: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    """The data set spec the run trained on (``mnist``, ``npz:/abs/path``), recorded in each
    model file so ``kdistill evaluate`` tests it on the same data by default."""


@dataclass
class Partial:
    """An epoch stopped between two steps: how many batches it had done, and its running
    figures (loss sums, examples seen, the task's meter, the last learning rate)."""

    batches: int
    sums: dict[str, torch.Tensor]
    seen: int
    meter: dict[str, Any]
    learning_rate: float


@dataclass
class LoopState:
    """What the loop carries from step to step."""

    objective: Objective
    loader: BatchSource
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    total_epochs: int
    procs: Processes = field(default_factory=Processes)
    forward: Callable[[Any], ObjectiveOutput] | None = None
    """The objective, wrapped in DistributedDataParallel when several processes train."""
    start_epoch: int = 0
    step: int = 0
    partial: Partial | None = None
    """Set by a resume from a checkpoint written inside an epoch; consumed by that epoch."""

    @property
    def total_steps(self) -> int:
        return len(self.loader) * self.total_epochs
