"""Build loss terms by name, as configs list them.

A config entry such as ``{kind: fitnet, weight: 100, student: "layers.2", teacher:
"layers.4"}`` becomes ``build_term("fitnet", 100, student="layers.2", teacher="layers.4")``.
Options are the keyword arguments of the term's constructor; module paths are always called
``student`` and ``teacher`` (``pairs: [[student_path, teacher_path], ...]`` for terms over
several layer pairs).
"""

from __future__ import annotations

import inspect
from typing import Any

from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm
from kdistill.losses.features import HintLoss, NeuronSelectivityLoss
from kdistill.losses.gradients import AttentionTransferLoss, InputGradientLoss
from kdistill.losses.logits import (
    DecoupledKDLoss,
    HardTargetLoss,
    LogitMatchingLoss,
    SoftTargetLoss,
)
from kdistill.losses.relations import (
    RelationalAngleLoss,
    RelationalDistanceLoss,
    SimilarityPreservingLoss,
)
from kdistill.losses.sparsity import ActivationBoundaryLoss
from kdistill.losses.weights import WeightMatchingLoss

TERM_REGISTRY: dict[str, type[LossTerm]] = {
    term.name: term
    for term in (
        SoftTargetLoss,
        HardTargetLoss,
        LogitMatchingLoss,
        DecoupledKDLoss,
        WeightMatchingLoss,
        HintLoss,
        NeuronSelectivityLoss,
        AttentionTransferLoss,
        InputGradientLoss,
        ActivationBoundaryLoss,
        RelationalDistanceLoss,
        RelationalAngleLoss,
        SimilarityPreservingLoss,
    )
}


def term_options(term_class: type[LossTerm]) -> tuple[list[str], list[str]]:
    """``(accepted, required)`` option names of a term: its constructor's keyword arguments
    other than ``weight``."""
    accepted: list[str] = []
    required: list[str] = []
    for parameter in list(inspect.signature(term_class.__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name == "weight":
            continue
        accepted.append(parameter.name)
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    return accepted, required


def build_term(kind: str, weight: float = 1.0, **options: Any) -> LossTerm:
    """A new :class:`LossTerm` of registered ``kind`` with ``weight`` and ``options``.

    Raises :class:`KDistillError` for an unknown kind (listing the known ones), an unknown
    option or a missing required option (listing the accepted ones).
    """
    if kind not in TERM_REGISTRY:
        raise KDistillError(
            f"unknown loss term kind {kind!r} in distill.terms: use one of "
            f"{', '.join(sorted(TERM_REGISTRY))}"
        )
    term_class = TERM_REGISTRY[kind]
    accepted, required = term_options(term_class)
    shown = ", ".join(accepted) if accepted else "none besides weight"
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise KDistillError(
            f"unknown option(s) {', '.join(unknown)} for loss term {kind!r}: accepted options are "
            f"{shown}"
        )
    missing = [name for name in required if name not in options]
    if missing:
        raise KDistillError(
            f"loss term {kind!r} needs option(s) {', '.join(missing)} (accepted options are "
            f"{shown})"
        )
    try:
        weight = float(weight)
    except (TypeError, ValueError):
        raise KDistillError(
            f"loss term {kind!r}: weight must be a number, got {weight!r}"
        ) from None
    return term_class(weight=weight, **options)
