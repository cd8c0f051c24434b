"""What the training engine optimises: an objective owns the models and returns named losses.

The engine never knows which method it runs. Plain training, distillation, born-again
generations and mutual learning are objectives; each returns a dict of *weighted* named
losses (their sum is minimised, each is logged) and the outputs the task's training metric
reads (logits, for classification).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.config import ParameterGroupConfig
from kdistill.data import Batch
from kdistill.engine.optim import ParameterGroup
from kdistill.tasks import BatchSource


@dataclass
class ObjectiveOutput:
    losses: dict[str, torch.Tensor]
    """Weighted named losses; the engine minimises their sum and logs each."""
    outputs: Any
    """What the task's training meter reads (logits ``[B, classes]`` for classification)."""


class Objective(nn.Module):
    """Base class: subclasses implement :meth:`forward` and :meth:`evaluation_models`."""

    def forward(self, batch: Batch) -> ObjectiveOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def evaluation_models(self) -> dict[str, nn.Module]:
        """The models to evaluate and save after each epoch, by name (e.g. ``{"student": ...}``)."""
        raise NotImplementedError

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (parameter for parameter in self.parameters() if parameter.requires_grad)

    group_settings: Mapping[str, ParameterGroupConfig] = {}
    """Submodule path -> optimizer settings of its parameters (a GAN's ``discriminator``)."""

    def parameter_groups(self) -> list[ParameterGroup]:
        """The trainable parameters as the optimizer's groups: those of each submodule named
        in :attr:`group_settings` with its settings, and all others first, in one group on the
        run's ``train.optimizer``."""
        groups: list[ParameterGroup] = []
        taken: set[int] = set()
        for path, settings in self.group_settings.items():
            parameters = [p for p in self.get_submodule(path).parameters() if p.requires_grad]
            groups.append(ParameterGroup(path, parameters, settings))
            taken.update(id(parameter) for parameter in parameters)
        rest = [
            parameter for parameter in self.trainable_parameters() if id(parameter) not in taken
        ]
        return [ParameterGroup("default", rest), *groups]

    def prepare(self, batch: Batch) -> None:
        """Run once on a first batch before the optimizer exists (materialises lazy adapters)."""

    def start_epoch(self, epoch: int, total_epochs: int, optimizer: torch.optim.Optimizer) -> None:
        """Called by the engine before each epoch's first batch (also on resume), with the
        optimizer, so an objective that rearranges its parameters (NetAug's channel sorting)
        rearranges their optimizer state (momentum, Adam moments) the same way. Default: nothing."""

    def finish_training(self, loader: BatchSource) -> None:
        """Called once after the last epoch, before the final evaluation and the saved models
        (NetAug re-estimates batch-norm statistics here on training batches). Default: nothing."""

    def after_step(self) -> None:
        """Apply weight constraints (the paper's max-norm) after each optimizer step."""
        for module in self.modules():
            constrain = getattr(module, "apply_weight_constraints", None)
            # Frozen models (teachers) were constrained when they were trained.
            if (
                constrain is not None
                and module is not self
                and any(parameter.requires_grad for parameter in module.parameters())
            ):
                constrain()


class SupervisedObjective(Objective):
    """Cross-entropy with the true labels: a teacher, or a student's hard-label baseline."""

    def __init__(
        self,
        model: nn.Module,
        label_smoothing: float = 0.0,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing
        self.loss = loss
        """A task's own loss of (outputs, labels), e.g. a detector's; default cross-entropy."""

    def forward(self, batch: Batch) -> ObjectiveOutput:
        logits = self.model(batch.inputs)
        if self.loss is not None:
            return ObjectiveOutput({"hard_targets": self.loss(logits, batch.labels)}, logits)
        loss = F.cross_entropy(logits, batch.labels, label_smoothing=self.label_smoothing)
        return ObjectiveOutput({"hard_targets": loss}, logits)

    def evaluation_models(self) -> dict[str, nn.Module]:
        return {"model": self.model}
