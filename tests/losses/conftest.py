"""Fixtures for the loss-term tests: a TermContext factory, single-threaded float64 maths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from kdistill.losses.base import FeatureRequest, TermContext


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _context(
    student_features: dict[str, torch.Tensor] | None = None,
    teacher_features: dict[str, torch.Tensor] | None = None,
    student_logits: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    inputs: torch.Tensor | None = None,
    student: nn.Module | None = None,
    teacher: nn.Module | None = None,
    has_labels: bool = True,
) -> TermContext:
    """A context holding the given features under ``FeatureRequest(side, path, "output")``."""
    features: dict[FeatureRequest, torch.Tensor] = {}
    for side, given in (("student", student_features), ("teacher", teacher_features)):
        for path, tensor in (given or {}).items():
            features[FeatureRequest(side, path)] = tensor
    if student_logits is None:
        student_logits = torch.zeros(1, 2, dtype=torch.float64)
    return TermContext(
        inputs=inputs if inputs is not None else torch.zeros(student_logits.shape[0], 1),
        labels=labels
        if labels is not None
        else torch.zeros(student_logits.shape[0], dtype=torch.long),
        student_logits=student_logits,
        teacher_member_logits=None if teacher_logits is None else teacher_logits[None],
        student=student if student is not None else nn.Identity(),
        teacher=teacher,
        features=features,
        has_labels=has_labels,
    )


@pytest.fixture
def make_context() -> Callable[..., TermContext]:
    def factory(**kwargs: Any) -> TermContext:
        return _context(**kwargs)

    return factory
