"""What a ``distill`` section asks of a distiller: its loss terms (Hinton et al. 2015's soft
and hard targets plus any registered term), whether the teacher's logits are computed once
(cached) or every step, and a check that the teacher saw inputs encoded as this run's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kdistill.config import DistillConfig
from kdistill.data import InputEncoding, TrainingData
from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm
from kdistill.losses.logits import HardTargetLoss, LogitMatchingLoss, SoftTargetLoss
from kdistill.losses.registry import build_term
from kdistill.teachers import Teacher

__all__ = ["build_terms", "check_teacher_encoding", "terms_from_config", "use_cached_logits"]


def build_terms(
    *,
    temperature: float,
    soft_target_weight: float = 1.0,
    hard_target_weight: float = 0.1,
    ensemble_rule: str = "arithmetic",
    objective: str = "soft-targets",
    use_labels: bool = True,
    extra: Sequence[LossTerm | str | dict[str, Any]] = (),
) -> list[LossTerm]:
    """The paper's pair (soft targets at ``temperature``, or logit matching; plus the hard
    labels when used) and any ``extra`` terms: term objects, registered kinds or
    ``{kind, weight, ...options}`` entries as configs list them."""
    terms: list[LossTerm] = []
    if objective == "soft-targets":
        terms.append(SoftTargetLoss(soft_target_weight, temperature, ensemble_rule))
    else:
        terms.append(LogitMatchingLoss(soft_target_weight))
    if use_labels and hard_target_weight > 0:
        terms.append(HardTargetLoss(hard_target_weight))
    for entry in extra:
        if isinstance(entry, LossTerm):
            terms.append(entry)
        elif isinstance(entry, str):
            terms.append(build_term(entry))
        else:
            options = {k: v for k, v in entry.items() if k not in {"kind", "weight"}}
            terms.append(build_term(entry["kind"], entry.get("weight", 1.0), **options))
    return terms


def terms_from_config(distill: DistillConfig) -> list[LossTerm]:
    """The loss terms a ``distill`` section asks for."""
    return build_terms(
        temperature=distill.temperature,
        soft_target_weight=distill.soft_target_weight,
        hard_target_weight=distill.hard_target_weight,
        ensemble_rule=distill.ensemble_rule,
        objective=distill.objective,
        use_labels=distill.use_labels,
        extra=[term.model_dump() for term in distill.terms],
    )


def use_cached_logits(
    terms: Sequence[LossTerm], max_shift: int, choice: str = "auto", epochs: int = 1
) -> bool:
    """Whether the teacher's logits are computed once instead of every step: no term reads
    the live teacher (its features or gradients), and either the transfer set is not
    augmented, or it is jittered and the run is long enough to repay one teacher pass per
    shift (``epochs >= (2 max_shift + 1)^2``; ``always`` caches whatever the length)."""
    live_needed = any(
        term.needs_live_teacher or any(r.side == "teacher" for r in term.reads()) for term in terms
    )
    if choice == "always" and live_needed:
        raise KDistillError(
            "distill.cache_teacher_logits=always, but a loss term reads the live teacher "
            "(its features or gradients): use auto or never"
        )
    if choice != "auto":
        return choice == "always"
    shifts = (2 * max_shift + 1) ** 2
    return not live_needed and (max_shift == 0 or epochs >= shifts)


def check_teacher_encoding(teacher: Teacher, data: TrainingData, paths: Sequence[str]) -> None:
    """Refuse a teacher trained on inputs encoded otherwise (normalised, flattened) than this
    run's: it would silently see wrong inputs. Files that record no encoding (older runs)
    were trained on plain pixels /255 or plain features."""
    expected = data.encoding.describe()
    for path, recorded in zip(paths, teacher.input_encodings, strict=True):
        if recorded is None:
            recorded = InputEncoding(divisor=data.encoding.divisor).describe()
        if recorded != expected:
            raise KDistillError(
                f"teacher {path} was trained on inputs encoded as {_short(recorded)}, this run "
                f"encodes them as {_short(expected)}: set data.normalize and data.input_shape "
                "as the teacher's run had them"
            )


def _short(described: dict[str, Any]) -> str:
    normalised = "normalised" if described.get("mean") is not None else "not normalised"
    shape = described.get("shape")
    return f"{normalised}, shape {shape if shape is not None else 'as stored'}"
