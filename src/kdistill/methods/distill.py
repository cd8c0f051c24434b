"""The distiller: a student, a frozen teacher and a list of loss terms, as one objective.

Hinton et al. (2015), section 2: the student minimises a weighted sum of the cross-entropy
with the teacher's soft targets at temperature T (times T^2) and the cross-entropy with the
true labels. Any other term from :mod:`kdistill.losses` (features, relations, gradients ...)
plugs in beside them with its own weight; the engine sees only named losses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from kdistill.config import DistillRunConfig
from kdistill.data import Batch, DataSet, TrainingData, prepare_data
from kdistill.engine import FitResult, FitSettings, fit, resolve_device
from kdistill.engine.objective import Objective, ObjectiveOutput
from kdistill.errors import KDistillError
from kdistill.files import cache_dir
from kdistill.losses.base import FeatureRequest, LossTerm, TermContext
from kdistill.methods.common import build_model, check_model, claim_run_folder, fit_settings
from kdistill.methods.teacher_outputs import teacher_features, top_k_cache
from kdistill.methods.terms import (
    check_teacher_encoding,
    terms_from_config,
    use_cached_logits,
)
from kdistill.models.causal_lm import check_same_vocabulary
from kdistill.teachers import (
    Teacher,
    cached_logits_of_batch,
    load_teacher,
    teacher_logits_for_split,
)

__all__ = ["Distiller", "FeatureRequest", "distill"]


class Distiller(Objective):
    """Trains ``student`` against ``teacher`` with ``terms``.

    ``cached_teacher_logits`` replaces the teacher's forward pass: ``[members, N, classes]``
    indexed by ``batch.indices``, or for a jittered transfer set ``[members, offsets, N,
    classes]`` indexed by ``batch.offsets`` and ``batch.indices``; it must not be given when a
    term reads teacher features or needs the live teacher.
    """

    cached_teacher_logits: torch.Tensor | None  # a buffer (register_buffer in __init__)

    def __init__(
        self,
        student: nn.Module,
        teacher: Teacher | None,
        terms: Sequence[LossTerm],
        cached_teacher_logits: torch.Tensor | None = None,
        use_labels: bool = True,
        cached_teacher_features: dict[FeatureRequest, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        if not terms:
            raise KDistillError("a distiller needs at least one loss term")
        self.student = student
        self.teacher = teacher
        self.terms = nn.ModuleList(terms)
        self.use_labels = use_labels
        self.requests = sorted({request for term in terms for request in term.reads()}, key=str)
        # Teacher features computed once ([N, ...] by example, see teacher_features_for_split)
        # replace the teacher's forward pass like cached logits do.
        self.cached_teacher_features = cached_teacher_features or {}
        needs_live = any(term.needs_live_teacher for term in terms) or any(
            request.side == "teacher" and request not in self.cached_teacher_features
            for request in self.requests
        )
        if cached_teacher_logits is not None and needs_live:
            raise KDistillError(
                "a loss term reads the live teacher: set distill.cache_teacher_logits=never"
            )
        self.register_buffer("cached_teacher_logits", cached_teacher_logits, persistent=False)
        self._reads_teacher_logits = any(
            term.reads_teacher_logits for term in terms if term.weight != 0
        )
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
                (request.path, request.kind)
                for request in self.requests
                if request.side == side and request not in self.cached_teacher_features
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
        context = self.term_context(batch)
        return ObjectiveOutput(self.term_losses(context), context.student_logits)

    def term_context(self, batch: Batch) -> TermContext:
        """The student's outputs on ``batch``, the teacher's (cached or live) and the
        features the terms read, as the terms see them."""
        stack, captures = self._captures()
        with stack:
            student_logits = self.student(batch.inputs)
            teacher_member_logits = None
            if self.cached_teacher_logits is not None:
                teacher_member_logits = cached_logits_of_batch(self.cached_teacher_logits, batch)
            elif self.teacher is not None and self._reads_teacher_logits:
                with torch.no_grad():
                    teacher_member_logits = self.teacher(batch.inputs)
            features = {
                request: self._cached_feature(request, batch)
                if request in self.cached_teacher_features
                else captures[request.side].get(request.path, request.kind)  # type: ignore[attr-defined]
                for request in self.requests
            }
        return TermContext(
            inputs=batch.inputs,
            labels=batch.labels,
            student_logits=student_logits,
            teacher_member_logits=teacher_member_logits,
            student=self.student,
            teacher=self.teacher_view,
            features=features,
            has_labels=self.use_labels,
            target_mask=batch.target_mask,
        )

    def term_losses(self, context: TermContext) -> dict[str, torch.Tensor]:
        """Each term's weighted loss by name (terms of weight 0 are not computed)."""
        return {
            name: term.weight * term(context)
            for name, term in zip(self._term_names, self.terms, strict=True)
            if term.weight != 0
        }

    def _cached_feature(self, request: FeatureRequest, batch: Batch) -> torch.Tensor:
        """The cached teacher feature of the batch's examples; for token ids cut after the
        batch's last real token, their first positions (the cache holds full-length texts)."""
        stored = self.cached_teacher_features[request]
        feature = stored[batch.indices.to(stored.device)].to(batch.inputs.device)
        if batch.inputs.dtype == torch.int64 and feature.dim() >= 3:
            feature = feature[:, : batch.inputs.shape[1]]
        return feature

    def prepare(self, batch: Batch) -> None:
        with torch.no_grad():
            self.forward(batch)

    def evaluation_models(self) -> dict[str, nn.Module]:
        return {"student": self.student}

    def adapter_parameter_count(self) -> int:
        """Parameters owned by loss terms (regressors, connectors): trained, never exported."""
        return sum(parameter.numel() for parameter in self.terms.parameters())


# --- From a config: the function behind ``kdistill distill`` --------------------------------


def distill(
    config: DistillRunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    dataset: DataSet | None = None,
) -> FitResult:
    """Distil a student from one or more teachers (Hinton et al. 2015) plus any extra terms.

    With ``distill.hint_epochs > 0`` this is FitNet's two-stage training (Romero et al. 2015):
    stage 1 trains for ``hint_epochs`` epochs on the ``fitnet`` terms alone, into
    ``output_dir/hint-stage/``; stage 2 then trains for ``train.epochs`` epochs from the stage-1
    student on every other term, as in the paper, or on the full list with
    ``distill.keep_hints``. The paper's stage 1 trains only the student's layers up to the
    guided layer: here the whole student runs forward, but only those layers and the regressor
    get gradients, so only they change (BatchNorm running statistics above the guided layer
    still update).

    A folder holding another run is refused unless ``resume`` (the same config;
    ``train.epochs`` may be raised) or ``overwrite``.
    """
    if not isinstance(config, DistillRunConfig):
        raise KDistillError(
            "this config has no distill section: add distill.teachers (see configs/)"
        )
    data = prepare_data(config.data, config.seed, dataset)
    teacher = load_teacher(config.distill.teachers)
    check_teacher_encoding(teacher, data, [t.checkpoint for t in config.distill.teachers])
    settings = fit_settings(config, Path(config.output_dir))
    student = build_model(config.model, config.seed)
    student_outputs = check_model(settings.task, student, data, f"student {config.model.name}")
    teacher_outputs = settings.task.probe(
        teacher.members[0], data.train, f"teacher {config.distill.teachers[0].checkpoint}"
    )
    if settings.task.name == "language-modeling":
        check_same_vocabulary(teacher_outputs, student_outputs)
    if teacher_outputs != student_outputs:
        raise KDistillError(
            f"the teacher outputs {teacher_outputs} classes and the student {student_outputs}: "
            "set model.kwargs.num_classes to match"
        )
    terms = terms_from_config(config.distill)
    make_objective: Callable[..., Distiller] = Distiller
    if config.distill.holistic is not None:
        from kdistill.methods.holistic import holistic_objective  # it imports this module

        make_objective = holistic_objective(config, data, student_outputs)
    if config.distill.on_policy is not None:
        # Imported here: on_policy.py subclasses this module's Distiller.
        from kdistill.methods.on_policy import (
            check_on_policy,
            check_positions,
            on_policy_distiller,
        )

        check_on_policy(config, terms)
        check_positions(config.distill.on_policy, {"model": student, "teacher": teacher})
    cached = None
    max_shift = config.data.max_shift
    features = None
    if config.distill.cache_teacher_features:
        features = teacher_features(config, terms, teacher, data)
    top_k_terms = [term for term in terms if getattr(term, "cached_top_k", False)]
    if top_k_terms:
        features = {**(features or {}), **top_k_cache(config, top_k_terms, teacher, data)}
    # No term reads the teacher's logits (a causal LM's CE or top-k terms): nothing to cache.
    # On-policy batches (GKD) are new texts, and the holistic term's dense maps are too large
    # to cache (as pixel_kl's): both read the live teacher.
    live_only = config.distill.on_policy is not None or config.distill.holistic is not None
    reads_logits = not live_only and any(
        term.reads_teacher_logits for term in terms if term.weight != 0
    )
    if reads_logits and (
        (features is not None and not top_k_terms)
        or use_cached_logits(
            terms, max_shift, config.distill.cache_teacher_logits, config.train.epochs
        )
    ):
        cached = teacher_logits_for_split(
            teacher,
            data.train,
            cache_dir(),
            max_shift=max_shift,
            batch_size=config.train.eval_batch_size,
            device=resolve_device(config.train.device),
        )
    if config.distill.hint_epochs and not any(term.name == "fitnet" for term in terms):
        raise KDistillError(
            f"distill.hint_epochs={config.distill.hint_epochs} needs a fitnet term in "
            "distill.terms: add {kind: fitnet, student: ..., teacher: ...} or set hint_epochs=0"
        )
    with claim_run_folder(
        config, resume=resume, overwrite=overwrite, may_raise=("train.epochs",)
    ) as run_dir:
        settings.recipes = {"student": config.model.model_dump()}
        if config.distill.hint_epochs:
            student = _hint_stage(config, data, student, teacher, terms, settings, run_dir, resume)
            if not config.distill.keep_hints:
                terms = [term for term in terms if term.name != "fitnet"]
        objective = (
            on_policy_distiller(config, student, teacher, terms, features)
            if config.distill.on_policy is not None
            else make_objective(
                student,
                teacher,
                terms,
                cached_teacher_logits=cached,
                use_labels=config.distill.use_labels,
                cached_teacher_features=features,
            )
        )
        settings.description = f"distill {run_dir.name}"
        settings.metadata = {
            "adapter_parameters": objective.adapter_parameter_count(),
            "teacher_cache": cached is not None,
        }
        return fit(objective, data, settings, resume=resume)


def _hint_stage(
    config: DistillRunConfig,
    data: TrainingData,
    student: nn.Module,
    teacher: Teacher,
    terms: list[LossTerm],
    settings: FitSettings,
    run_dir: Path,
    resume: bool,
) -> nn.Module:
    """FitNet's stage 1: ``hint_epochs`` on the fitnet terms alone, in ``run_dir/hint-stage``."""
    hints = [term for term in terms if term.name == "fitnet"]
    hint_settings = replace(
        settings,
        train=config.train.model_copy(update={"epochs": config.distill.hint_epochs}),
        run_dir=run_dir / "hint-stage",
        description=f"hints {run_dir.name}",
        metadata={"stage": "hints"},
    )
    fit(Distiller(student, teacher, hints), data, hint_settings, resume=resume)
    return student
