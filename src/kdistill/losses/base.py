"""What every loss term sees and declares.

A loss term is a small ``nn.Module`` that reads the student's and teacher's outputs (and,
if it asks, intermediate tensors captured by module path) and returns one unweighted scalar.
The :class:`~kdistill.procedures.distill.Distiller` multiplies it by the term's ``weight``
and logs it under the term's ``name``, so every method is a plug-in, never a copy of the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureRequest:
    """One intermediate tensor a term reads: ``side`` is "student" or "teacher",
    ``path`` a module path as in ``model.named_modules()`` (e.g. ``"layers.3"``), and
    ``kind`` is ``"output"`` (the module's output) or ``"input"`` (its first positional input)."""

    side: str
    path: str
    kind: str = "output"


@dataclass
class TermContext:
    """Everything a loss term may read for one batch.

    ``teacher_member_logits`` has shape ``[members, batch, classes]`` (one member for a single
    teacher) and is ``None`` for terms trained without a teacher; :attr:`teacher_logits` is
    their mean, the logits of the geometric-mean ensemble. ``features`` maps
    each requested :class:`FeatureRequest` to the captured tensor. ``student`` and ``teacher``
    are the models themselves, for terms that match weights or need their own forward
    passes (gradient-based attention transfer)."""

    inputs: torch.Tensor
    labels: torch.Tensor
    student_logits: torch.Tensor
    teacher_member_logits: torch.Tensor | None
    student: nn.Module
    teacher: nn.Module | None = None
    features: dict[FeatureRequest, torch.Tensor] = field(default_factory=dict)
    has_labels: bool = True

    @property
    def teacher_logits(self) -> torch.Tensor | None:
        if self.teacher_member_logits is None:
            return None
        return self.teacher_member_logits.mean(dim=0)


class LossTerm(nn.Module):
    """Base class of a loss term. Subclasses set ``name`` and implement :meth:`forward`.

    ``needs_live_teacher`` is True when a term needs the teacher to run on each batch (its
    features or gradients); the Distiller then never serves the teacher from the logit cache.
    The teacher model itself (``context.teacher``, e.g. for its weights) is there either way.
    Parameters a term owns (adapters, regressors) are trained with the student and counted
    apart from it; they are never part of the exported student.
    """

    name: str = "term"
    needs_live_teacher: bool = False

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def reads(self) -> list[FeatureRequest]:
        """The intermediate tensors this term needs captured (none by default)."""
        return []

    def forward(self, context: TermContext) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
