"""Teacher outputs computed once over a fixed transfer set, for terms that read more than
logits: the features feature terms read (``distill.cache_teacher_features``) and a causal
LM's top-k next-token log-probabilities (``lm_divergence`` with ``cached_top_k``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kdistill.config import DistillRunConfig
from kdistill.data import TrainingData
from kdistill.engine import resolve_device
from kdistill.errors import KDistillError
from kdistill.files import cache_dir
from kdistill.losses.base import FeatureRequest, LossTerm
from kdistill.losses.causal_lm import TOP_K_IDS, TOP_K_LOG_PROBS
from kdistill.teachers import Teacher, teacher_features_for_split, teacher_top_k_for_split

__all__ = ["teacher_features", "top_k_cache"]


def teacher_features(
    config: DistillRunConfig, terms: Sequence[LossTerm], teacher: Teacher, data: TrainingData
) -> dict[FeatureRequest, torch.Tensor]:
    """``distill.cache_teacher_features``: every teacher feature the terms read, computed once
    on the transfer set (refused where the teacher's inputs change or a term needs more)."""
    if config.data.max_shift or config.distill.hint_epochs:
        raise KDistillError(
            "distill.cache_teacher_features needs a fixed transfer set and one stage: set "
            "data.max_shift=0 and distill.hint_epochs=0, or cache_teacher_features=false"
        )
    live = [term.name for term in terms if term.needs_live_teacher]
    if live:
        raise KDistillError(
            f"distill.cache_teacher_features: term(s) {', '.join(live)} need the live teacher "
            "(gradients or weights), not only its features: set cache_teacher_features=false"
        )
    requests = sorted(
        {request for term in terms for request in term.reads() if request.side == "teacher"},
        key=str,
    )
    view = teacher.members[0] if len(teacher.members) == 1 else teacher
    tensors = teacher_features_for_split(
        view,
        data.train,
        [(request.path, request.kind) for request in requests],
        batch_size=config.train.eval_batch_size,
        device=resolve_device(config.train.device),
    )
    return {request: tensors[(request.path, request.kind)] for request in requests}


def top_k_cache(
    config: DistillRunConfig, terms: Sequence[LossTerm], teacher: Teacher, data: TrainingData
) -> dict[FeatureRequest, torch.Tensor]:
    """The teacher's top-k next-token log-probabilities and ids over the transfer set, computed
    once in shards on disk (resumable), served to ``lm_divergence`` terms with ``cached_top_k``."""
    settings = {(getattr(term, "top_k", None), getattr(term, "temperature", 1.0)) for term in terms}
    if len(settings) != 1 or next(iter(settings))[0] is None:
        raise KDistillError(
            "lm_divergence cached_top_k: give every such term the same top_k and temperature"
        )
    top_k, temperature = next(iter(settings))
    assert top_k is not None  # checked above
    log_probs, ids = teacher_top_k_for_split(
        teacher,
        data.train,
        cache_dir(),
        k=top_k,
        temperature=temperature,
        batch_size=config.train.eval_batch_size,
        device=resolve_device(config.train.device),
    )
    return {TOP_K_LOG_PROBS: log_probs, TOP_K_IDS: ids}
