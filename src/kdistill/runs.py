"""Run a validated config: the functions behind ``kdistill train`` and ``kdistill distill``.

Each is a plain function a user can call from Python with a :class:`~kdistill.config.RunConfig`;
the CLI verbs only parse arguments and call these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kdistill.config import DataConfig, RunConfig, dump_config
from kdistill.data import (
    DataSet,
    Split,
    carve_validation,
    check_num_classes,
    keep_classes,
    load_dataset,
    take_fraction,
)
from kdistill.engine import FitResult, Objective, SupervisedObjective, fit, resolve_device
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text
from kdistill.losses.logits import HardTargetLoss, LogitMatchingLoss, SoftTargetLoss
from kdistill.methods.distill import Distiller
from kdistill.models import create_model
from kdistill.teachers import load_teacher, teacher_logits_for_split


def cache_dir() -> Path:
    return Path(os.environ.get("KDISTILL_CACHE", Path.home() / ".cache" / "kdistill"))


@dataclass
class PreparedData:
    dataset: DataSet
    train: Split
    eval_splits: dict[str, Split]


def prepare_data(config: DataConfig, seed: int, dataset: DataSet | None = None) -> PreparedData:
    """Load the data set and derive the training (transfer) split the config asks for.

    A validation split is carved from the training data, never from the test set; class
    filters and fractions apply to the training split only, so the test set stays whole.
    """
    dataset = dataset or load_dataset(config.name, cache_dir=cache_dir())
    train = dataset.train
    eval_splits: dict[str, Split] = {}
    if config.validation_size:
        train, validation = carve_validation(train, config.validation_size, seed)
        eval_splits["validation"] = validation
    if config.keep_classes is not None:
        unknown = [c for c in config.keep_classes if not 0 <= c < dataset.num_classes]
        if unknown:
            raise KDistillError(
                f"data.keep_classes has {unknown}, but {dataset.name} has classes 0..{dataset.num_classes - 1}"
            )
        train = keep_classes(train, config.keep_classes)
    if config.train_fraction < 1:
        train = take_fraction(train, config.train_fraction, seed)
    eval_splits["test"] = dataset.test
    return PreparedData(dataset, train, eval_splits)


def fit_prepared(
    objective: Objective,
    data: PreparedData,
    config: RunConfig,
    run_dir: str | Path,
    *,
    seed: int | None = None,
    **options: Any,
) -> FitResult:
    """:func:`kdistill.engine.fit` on prepared data with the config's training settings, seed
    (unless ``seed`` is given) and jitter; ``options`` go to ``fit`` unchanged."""
    return fit(
        objective,
        data.train,
        data.eval_splits,
        config.train,
        run_dir,
        seed=config.seed if seed is None else seed,
        max_shift=config.data.max_shift,
        **options,
    )


def _write_config(config: RunConfig) -> Path:
    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_config(config))
    return run_dir


def _model_outputs(model: torch.nn.Module, example: torch.Tensor) -> int:
    with torch.no_grad():
        was_training = model.training
        model.eval()
        outputs = model(example[:1].float() / 255.0).shape[-1]
        model.train(was_training)
    return int(outputs)


def train(config: RunConfig, *, resume: bool = False, dataset: DataSet | None = None) -> FitResult:
    """Train one model on hard labels (a teacher, or a baseline student)."""
    data = prepare_data(config.data, config.seed, dataset)
    torch.manual_seed(config.seed)
    model = create_model(config.model.name, **config.model.kwargs)
    check_num_classes(data.dataset, _model_outputs(model, data.train.images))
    run_dir = _write_config(config)
    recipe = config.model.model_dump()
    return fit_prepared(
        SupervisedObjective(model),
        data,
        config,
        run_dir,
        resume=resume,
        recipes={"model": recipe},
        description=f"train {run_dir.name}",
    )


def build_terms(config: RunConfig) -> list:
    """The loss terms a ``distill`` section asks for: the paper's pair plus any extra terms."""
    distill = config.distill
    assert distill is not None
    terms: list = []
    if distill.objective == "soft-targets":
        terms.append(
            SoftTargetLoss(distill.soft_target_weight, distill.temperature, distill.ensemble_rule)
        )
    else:
        terms.append(LogitMatchingLoss(distill.soft_target_weight))
    if distill.use_labels and distill.hard_target_weight > 0:
        terms.append(HardTargetLoss(distill.hard_target_weight))
    if distill.terms:
        from kdistill.losses.registry import build_term

        for term in distill.terms:
            options = {k: v for k, v in term.model_dump().items() if k not in {"kind", "weight"}}
            terms.append(build_term(term.kind, term.weight, **options))
    return terms


def distill(
    config: RunConfig, *, resume: bool = False, dataset: DataSet | None = None
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
    """
    if config.distill is None:
        raise KDistillError(
            "this config has no distill section: add distill.teachers (see configs/)"
        )
    data = prepare_data(config.data, config.seed, dataset)
    teacher = load_teacher(config.distill.teachers)
    torch.manual_seed(config.seed)
    student = create_model(config.model.name, **config.model.kwargs)
    check_num_classes(data.dataset, _model_outputs(student, data.train.images))
    teacher_outputs = _model_outputs(teacher.members[0], data.train.images)
    if teacher_outputs != _model_outputs(student, data.train.images):
        raise KDistillError(
            f"the teacher outputs {teacher_outputs} classes and the student "
            f"{_model_outputs(student, data.train.images)}: set model.kwargs.num_classes to match"
        )
    terms = build_terms(config)
    live_needed = any(
        term.needs_live_teacher or any(r.side == "teacher" for r in term.reads()) for term in terms
    )
    choice = config.distill.cache_teacher_logits
    use_cache = choice == "always" or (
        choice == "auto" and config.data.max_shift == 0 and not live_needed
    )
    if choice == "always" and config.data.max_shift > 0:
        raise KDistillError(
            "distill.cache_teacher_logits=always with data.max_shift > 0: augmented inputs change every epoch; use auto"
        )
    cached = None
    if use_cache:
        cached = teacher_logits_for_split(
            teacher, data.train, cache_dir(), device=resolve_device(config.train.device)
        )
    run_dir = _write_config(config)
    if config.distill.hint_epochs:
        hints = [term for term in terms if term.name == "fitnet"]
        if not hints:
            raise KDistillError(
                f"distill.hint_epochs={config.distill.hint_epochs} needs a fitnet term in "
                "distill.terms: add {kind: fitnet, student: ..., teacher: ...} or set hint_epochs=0"
            )
        fit_prepared(
            Distiller(student, teacher, hints),
            data,
            config,
            run_dir / "hint-stage",
            resume=resume,
            recipes={"student": config.model.model_dump()},
            description=f"hints {run_dir.name}",
            epochs=config.distill.hint_epochs,
            extra_metadata={"stage": "hints"},
        )
        if not config.distill.keep_hints:
            terms = [term for term in terms if term.name != "fitnet"]
    objective = Distiller(
        student, teacher, terms, cached_teacher_logits=cached, use_labels=config.distill.use_labels
    )
    result = fit_prepared(
        objective,
        data,
        config,
        run_dir,
        resume=resume,
        recipes={"student": config.model.model_dump()},
        description=f"distill {run_dir.name}",
        extra_metadata={
            "adapter_parameters": objective.adapter_parameter_count(),
            "teacher_cache": use_cache,
        },
    )
    return result


def apply_class_bias_shift(model: torch.nn.Module, shifts: dict[int, float]) -> None:
    """Add ``shifts[c]`` to the output bias of class ``c`` (Hinton et al. 2015, section 3:
    the fix for classes missing from the transfer set)."""
    final = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    if not final or final[-1].bias is None:
        raise KDistillError("class_bias_shift needs a model whose last Linear layer has a bias")
    with torch.no_grad():
        for label, shift in shifts.items():
            final[-1].bias[int(label)] += float(shift)


def describe(result: FitResult) -> dict[str, Any]:
    return {
        name: {split: metrics["errors"] for split, metrics in splits.items()}
        for name, splits in result.final.items()
    }
