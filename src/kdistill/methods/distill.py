"""The distiller: a student, a frozen teacher and a list of loss terms, as one objective.

Hinton et al. (2015), section 2: the student minimises a weighted sum of the cross-entropy
with the teacher's soft targets at temperature T (times T^2) and the cross-entropy with the
true labels. Any other term from :mod:`kdistill.losses` (features, relations, gradients ...)
plugs in beside them with its own weight; the engine sees only named losses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn

from kdistill.data import Batch
from kdistill.engine.objective import Objective, ObjectiveOutput
from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, LossTerm, TermContext
from kdistill.teachers.teacher import Teacher


class Distiller(Objective):
    """Trains ``student`` against ``teacher`` with ``terms``.

    ``cached_teacher_logits`` (``[members, N, classes]``, indexed by ``batch.indices``) replaces
    the teacher's forward pass when the transfer set is not augmented; it must not be given
    when a term reads teacher features or needs the live teacher.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: Teacher | None,
        terms: Sequence[LossTerm],
        cached_teacher_logits: torch.Tensor | None = None,
        use_labels: bool = True,
    ) -> None:
        super().__init__()
        if not terms:
            raise KDistillError("a distiller needs at least one loss term")
        self.student = student
        self.teacher = teacher
        self.terms = nn.ModuleList(terms)
        self.use_labels = use_labels
        self.requests = sorted({request for term in terms for request in term.reads()}, key=str)
        needs_live = any(term.needs_live_teacher for term in terms) or any(
            request.side == "teacher" for request in self.requests
        )
        if cached_teacher_logits is not None and needs_live:
            raise KDistillError(
                "a loss term reads the live teacher: set distill.cache_teacher_logits=never"
            )
        self.register_buffer("cached_teacher_logits", cached_teacher_logits, persistent=False)
        names = [term.name for term in terms]
        self._term_names = [
            name if names.count(name) == 1 else f"{name}.{index}"
            for index, name in enumerate(names)
        ]

    @property
    def teacher_view(self) -> nn.Module | None:
        """What terms see as "the teacher": the model itself for a single teacher, so module
        paths read as in the user's model (``layers.4``); for an ensemble, the
        :class:`Teacher` (paths then start with ``members.<i>.``)."""
        if self.teacher is not None and len(self.teacher.members) == 1:
            return self.teacher.members[0]
        return self.teacher

    @property
    def uses_cache(self) -> bool:
        return self.cached_teacher_logits is not None

    def _captures(self) -> tuple[contextlib.AbstractContextManager, dict[str, object]]:
        if not self.requests:
            return contextlib.nullcontext(), {}
        from kdistill.losses.hooks import FeatureCapture

        captures: dict[str, object] = {}
        for side, model in (("student", self.student), ("teacher", self.teacher_view)):
            paths = [
                (request.path, request.kind) for request in self.requests if request.side == side
            ]
            if paths:
                if model is None:
                    raise KDistillError(
                        "a loss term reads teacher features but no teacher is configured"
                    )
                captures[side] = FeatureCapture(model, paths)
        stack = contextlib.ExitStack()
        for capture in captures.values():
            stack.enter_context(capture)  # type: ignore[arg-type]
        return stack, captures

    def forward(self, batch: Batch) -> ObjectiveOutput:
        stack, captures = self._captures()
        with stack:
            student_logits = self.student(batch.inputs)
            teacher_member_logits = None
            if self.cached_teacher_logits is not None:
                teacher_member_logits = self.cached_teacher_logits[
                    :, batch.indices.to(self.cached_teacher_logits.device)
                ]
            elif self.teacher is not None:
                with torch.no_grad():
                    teacher_member_logits = self.teacher(batch.inputs)
            features = {
                request: captures[request.side].get(request.path, request.kind)  # type: ignore[attr-defined]
                for request in self.requests
            }
        context = TermContext(
            inputs=batch.inputs,
            labels=batch.labels,
            student_logits=student_logits,
            teacher_member_logits=teacher_member_logits,
            student=self.student,
            teacher=self.teacher_view,
            features=features,
            has_labels=self.use_labels,
        )
        losses = {
            name: term.weight * term(context)
            for name, term in zip(self._term_names, self.terms, strict=True)
            if term.weight != 0
        }
        return ObjectiveOutput(losses, student_logits)

    def prepare(self, batch: Batch) -> None:
        with torch.no_grad():
            self.forward(batch)

    def evaluation_models(self) -> dict[str, nn.Module]:
        return {"student": self.student}

    def adapter_parameter_count(self) -> int:
        """Parameters owned by loss terms (regressors, connectors): trained, never exported."""
        return sum(parameter.numel() for parameter in self.terms.parameters())


__all__ = ["Distiller", "FeatureRequest"]
