"""What every loss term sees and declares.

A loss term is a small ``nn.Module`` that reads the student's and teacher's outputs (and,
if it asks, intermediate tensors captured by module path) and returns one unweighted scalar.
The :class:`~kdistill.methods.distill.Distiller` multiplies it by the term's ``weight``
and logs it under the term's ``name``, so every method is a plug-in, never a copy of the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import nn

from kdistill.errors import KDistillError


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
    target_mask: torch.Tensor | None = None
    """Token batches: the tokens to predict (``Batch.target_mask``); ``None``: every real one."""

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
    reads_teacher_logits: bool = True
    """False for a term that reads only cached teacher features (a causal LM's top-k cache):
    when no term reads them, the distiller does not run the teacher for its logits."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def reads(self) -> list[FeatureRequest]:
        """The intermediate tensors this term needs captured (none by default)."""
        return []

    def forward(self, context: TermContext) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


TERM_REGISTRY: dict[str, type[LossTerm]] = {}
"""Registered loss terms by name, filled by :func:`register_term`. Read it through
:mod:`kdistill.losses.registry`, which imports every built-in term module so it is complete."""

T = TypeVar("T", bound=type[LossTerm])


def register_term(term_class: T) -> T:
    """Class decorator: make a :class:`LossTerm` subclass buildable by its ``name``.

    The class must set its own ``name`` (a non-empty string without ``:``, which marks an
    import path). Registering a different class under a taken name raises
    :class:`KDistillError`; registering the same class again, or a re-import of it (same
    module and qualified name, e.g. after ``importlib.reload``), is allowed.
    """
    if not (isinstance(term_class, type) and issubclass(term_class, LossTerm)):
        raise KDistillError(
            f"@register_term: {term_class!r} must subclass kdistill.losses.base.LossTerm"
        )
    label = f"{term_class.__module__}.{term_class.__qualname__}"
    name = term_class.__dict__.get("name")
    if not isinstance(name, str) or not name or ":" in name:
        raise KDistillError(
            f"@register_term: {label} must set a class attribute name = '...' (a non-empty "
            f"string without ':'), got {name!r}"
        )
    taken = TERM_REGISTRY.get(name)
    if taken is not None and taken is not term_class:
        same = (taken.__module__, taken.__qualname__) == (
            term_class.__module__,
            term_class.__qualname__,
        )
        if not same:
            raise KDistillError(
                f"loss term name {name!r} is taken by {taken.__module__}.{taken.__qualname__}; "
                f"cannot register {label} under it too: give it another name"
            )
    TERM_REGISTRY[name] = term_class
    return term_class
