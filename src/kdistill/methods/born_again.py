"""Born-Again Networks: a chain of students, each with the architecture of its teacher.

Reference: T. Furlanello, Z. C. Lipton, M. Tschannen, L. Itti, A. Anandkumar, "Born-Again
Neural Networks", ICML 2018.

Section 3: a teacher is trained on the labels, minimising ``L(y, f(x, theta_T))``; a student
*parameterised identically* is then trained from a fresh random initialisation with the
distillation loss ``L(f(x, theta_T*), f(x, theta_S))`` to the teacher's outputs. Section 3.1
("sequence of teaching selves") repeats this: generation ``k`` is trained with knowledge
transferred from generation ``k - 1``, and the BAN ensemble of the first ``k`` students
averages their predictions, ``f^k(x) = (1/k) sum_{i=1..k} f(x, theta_i)``.

Here generation 0 is the label-trained teacher T and generation ``k >= 1`` minimises
``soft_target_weight * T^2 * CE(p_{k-1}(T), p_k(T)) + hard_target_weight * CE(y, p_k)``,
Hinton et al.'s soft term (:class:`~kdistill.losses.logits.SoftTargetLoss`; at the BAN
default T = 1 the ``T^2`` factor is 1) plus the label cross-entropy; ``hard_target_weight: 0``
leaves the distillation loss of section 3 alone. Every generation is one call of the engine's
:func:`~kdistill.engine.trainer.fit` in ``output_dir/gen-<k>/``; a finished generation leaves
``model.safetensors`` and a ``done.json`` marker, so a killed run resumes at the generation it
was in (and, inside it, at its last epoch checkpoint).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdistill.config import BornAgainConfig, BornAgainRunConfig, TeacherConfig, config_digest
from kdistill.data import DataSet, TrainingData, prepare_data
from kdistill.engine import fit, is_main_process, resolve_device
from kdistill.engine.checkpoint import load_model
from kdistill.engine.objective import Objective, SupervisedObjective
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text, run_once
from kdistill.losses.logits import HardTargetLoss, SoftTargetLoss, teacher_log_probs
from kdistill.methods.common import (
    build_model,
    check_model,
    claim_run_folder,
    derived_seed,
    file_sha256,
    fit_settings,
    resumable_checkpoint,
)
from kdistill.methods.distill import Distiller
from kdistill.tasks import create_task, evaluate_classifier, predict_logits, without_confusion
from kdistill.teachers import evaluate_growing_ensembles, load_teacher

DONE_NAME = "done.json"
MODEL_NAME = "model.safetensors"
SUMMARY_NAME = "born_again.json"

# --- Born-again generations -------------------------------------------------------------------


def ensemble_log_probs(member_logits: torch.Tensor) -> torch.Tensor:
    """``log((1/k) sum_i softmax(z_i))`` for logits ``[k, batch, classes]``.

    The BAN ensemble of section 3.1 averages the members' predicted distributions; the log of
    that average is computed with a log-sum-exp so no probability underflows.
    """
    return teacher_log_probs(member_logits, 1.0, "arithmetic")


def generation_seed(seed: int, generation: int) -> int:
    """Initialisation and batch-order seed of a generation.

    Generation 0 uses the run's seed, so it is exactly the model ``kdistill train`` makes from
    the same config; each student starts from its own random initialisation (section 3:
    students are trained from scratch, not from the teacher's weights).
    """
    return seed if generation == 0 else derived_seed(seed, f"born-again-generation-{generation}")


class _GenerationDistiller(Distiller):
    """A distiller whose student is saved as ``model.safetensors``, like generation 0's model,
    so every generation's file has the same name and loads by path."""

    def evaluation_models(self) -> dict[str, nn.Module]:
        return {"model": self.student}


@dataclass
class GenerationResult:
    """One generation: 0 is the label-trained teacher T, k >= 1 the k-th born-again student."""

    generation: int
    run_dir: Path
    model_path: Path
    final: dict[str, Any]
    """Split name -> the engine's metrics summary (errors, accuracy, loss, per class)."""
    sha256: str
    """Digest of the model file: the next generation records its teacher by it."""
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    reused: bool = False
    """True when read back (a finished generation on resume, or a given teacher file)."""

    def errors(self, split: str = "test") -> int:
        return int(self.final[split]["errors"])


@dataclass
class BornAgainResult:
    output_dir: Path
    generations: list[GenerationResult]
    """Index = generation number; ``generations[0]`` is the teacher."""
    ensembles: list[dict[str, Any]]
    """``ensembles[k - 1]``: the BAN ensemble of students 1..k, split name -> metrics."""

    def test_errors(self) -> list[int]:
        return [generation.errors("test") for generation in self.generations]

    def ensemble_test_errors(self) -> list[int]:
        return [int(ensemble["test"]["errors"]) for ensemble in self.ensembles]

    def summary(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "generations": [
                {
                    "generation": g.generation,
                    "model": str(g.model_path),
                    "seconds": round(g.seconds, 2),
                    "reused": g.reused,
                    "metrics": without_confusion(g.final),
                }
                for g in self.generations
            ],
            "ensembles": [
                {"generations": list(range(1, k + 2)), "metrics": without_confusion(ensemble)}
                for k, ensemble in enumerate(self.ensembles)
            ],
        }


def _legacy_marker(identity: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """Read a ``done.json`` written before generations used :func:`run_once` (identity keys
    at the top level): its result if it names this identity, else None (train again)."""

    def read(saved: dict[str, Any]) -> dict[str, Any] | None:
        if saved.get("config_digest") != identity["config_digest"]:
            raise KDistillError(
                "this born-again folder was trained with a different config: resume with the "
                "same config (only --generations may change), or use a new output_dir"
            )
        if any(saved.get(key) != value for key, value in identity.items()):
            return None
        return {key: saved[key] for key in ("model_sha256", "final", "history", "seconds")}

    return read


def _student_objective(
    student: nn.Module,
    student_outputs: int,
    teacher_path: Path,
    settings: BornAgainConfig,
    data: TrainingData,
    config: BornAgainRunConfig,
) -> Objective:
    teacher = load_teacher([TeacherConfig(checkpoint=str(teacher_path))])
    task = create_task(config.task)
    teacher_outputs = task.probe(teacher.members[0], data.train, f"teacher {teacher_path}")
    if teacher_outputs != student_outputs:
        raise KDistillError(
            f"generation 0 ({teacher_path}) outputs {teacher_outputs} classes and the student "
            f"{student_outputs}: give born_again.teacher a model with "
            "model.kwargs.num_classes outputs"
        )
    cached = None
    if config.data.max_shift == 0:
        # Without augmentation the teacher sees the same images every epoch: its logits are
        # computed once, in memory (each generation's teacher is used by one student only,
        # so the on-disk logit cache would only fill the disk).
        device = resolve_device(config.train.device)
        cached = predict_logits(
            teacher.members[0], data.train, config.train.eval_batch_size, device
        ).unsqueeze(0)
    terms: list = [SoftTargetLoss(settings.soft_target_weight, settings.temperature)]
    if settings.hard_target_weight > 0:
        terms.append(HardTargetLoss(settings.hard_target_weight))
    return _GenerationDistiller(student, teacher, terms, cached_teacher_logits=cached)


def _train_generation(
    generation: int,
    config: BornAgainRunConfig,
    settings: BornAgainConfig,
    data: TrainingData,
    root: Path,
    digest: str,
    teacher: GenerationResult | None,
    resume: bool,
) -> GenerationResult:
    run_dir = root / f"gen-{generation}"
    identity = {
        "procedure": "born-again",
        "generation": generation,
        "config_digest": digest,
        "teacher_sha256": teacher.sha256 if teacher is not None else None,
    }
    model_path = run_dir / MODEL_NAME

    def train_generation() -> dict[str, Any]:
        seed = generation_seed(config.seed, generation)
        model = build_model(config.model, seed)
        task = create_task(config.task)
        outputs = check_model(task, model, data, f"model {config.model.name}")
        if teacher is None:
            objective: Objective = SupervisedObjective(model)
        else:
            objective = _student_objective(
                model, outputs, teacher.model_path, settings, data, config
            )
        started = time.perf_counter()
        result = fit(
            objective,
            data,
            fit_settings(
                config,
                run_dir,
                seed=seed,
                recipes={"model": config.model.model_dump()},
                description=f"born-again gen {generation}",
                metadata=identity,
            ),
            resume=resume and resumable_checkpoint(run_dir, identity),
        )
        return {
            "model_sha256": file_sha256(model_path),
            "final": result.final["model"],
            "history": result.history,
            "seconds": time.perf_counter() - started,
        }

    if not resume:
        (run_dir / DONE_NAME).unlink(missing_ok=True)
    saved, reused = run_once(
        run_dir,
        identity,
        train_generation,
        marker=DONE_NAME,
        # A changed config is the user's mistake; a retrained teacher makes this stale.
        must_match=("config_digest",),
        legacy=_legacy_marker(identity),
        # The model file replaced after the marker was written: train (resume) again.
        still_valid=lambda result: (
            model_path.exists() and file_sha256(model_path) == result["model_sha256"]
        ),
    )
    return GenerationResult(
        generation,
        run_dir,
        model_path,
        saved["final"],
        saved["model_sha256"],
        saved["history"],
        saved["seconds"],
        reused=reused,
    )


def _given_teacher(path: str, data: TrainingData, config: BornAgainRunConfig) -> GenerationResult:
    """Generation 0 read from ``born_again.teacher`` instead of trained here."""
    model_path = Path(path)
    model, _ = load_model(model_path)
    device = resolve_device(config.train.device)
    final = {
        name: evaluate_classifier(model, split, config.train.eval_batch_size, device).summary(
            with_details=True
        )
        for name, split in data.eval_splits.items()
    }
    return GenerationResult(
        0, model_path.parent, model_path, final, file_sha256(model_path), reused=True
    )


def run_born_again(
    config: BornAgainRunConfig,
    generations: int | None = None,
    resume: bool = False,
    *,
    overwrite: bool = False,
    dataset: DataSet | None = None,
) -> BornAgainResult:
    """Train generation 0 on the labels, then ``generations`` born-again students in turn.

    ``generations`` overrides ``config.born_again.generations`` (default 3). With ``resume``,
    finished generations (model file + ``done.json`` for this config and this teacher) are
    read back, the interrupted one continues from its epoch checkpoint, and the rest are
    trained; raising ``generations`` on a finished run trains only the new ones. Without
    ``resume`` every generation is trained afresh, and a folder holding another run is refused
    unless ``overwrite``. ``dataset`` (a
    :class:`~kdistill.data.DataSet`) skips loading ``config.data.name``.

    Evaluates every generation and the BAN ensembles of students 1..k for every k
    (Furlanello et al. 2018, section 3.1), and writes ``output_dir/born_again.json``.
    """
    if not isinstance(config, BornAgainRunConfig):
        raise KDistillError(
            f"born-again takes a config with a born_again section, got {type(config).__name__}: "
            "load it with load_config(path, schema=BornAgainRunConfig)"
        )
    settings = config.born_again
    count = settings.generations if generations is None else generations
    if count < 1:
        raise KDistillError(
            f"born-again needs at least 1 generation, got {count}: pass --generations 1 or more"
        )
    settings = settings.model_copy(update={"generations": count})
    config = config.model_copy(update={"born_again": settings})
    data = prepare_data(config.data, config.seed, dataset)
    fit_settings(config, Path(config.output_dir))  # the device and the task, before any write
    with claim_run_folder(
        config, resume=resume, overwrite=overwrite, drop=("born_again.generations",)
    ) as root:
        return _run_chain(config, settings, data, root, count, resume)


def _run_chain(
    config: BornAgainRunConfig,
    settings: BornAgainConfig,
    data: TrainingData,
    root: Path,
    count: int,
    resume: bool,
) -> BornAgainResult:
    digest = config_digest(config, drop=("born_again.generations",))
    if not resume:
        # A fresh run must not leave markers of an older chain that a later --resume trusts.
        for marker in root.glob(f"gen-*/{DONE_NAME}"):
            marker.unlink()

    if settings.teacher is not None:
        chain = [_given_teacher(settings.teacher, data, config)]
    else:
        chain = [_train_generation(0, config, settings, data, root, digest, None, resume)]
    for generation in range(1, count + 1):
        chain.append(
            _train_generation(generation, config, settings, data, root, digest, chain[-1], resume)
        )

    device = resolve_device(config.train.device)
    students = [load_model(result.model_path)[0] for result in chain[1:]]
    ensembles = [
        {name: evaluation.summary() for name, evaluation in entry.items()}
        for entry in evaluate_growing_ensembles(
            students, data.eval_splits, batch_size=config.train.eval_batch_size, device=device
        )
    ]
    result = BornAgainResult(root, chain, ensembles)
    if is_main_process():  # under torchrun, rank 0 writes for every process
        atomic_write_text(root / SUMMARY_NAME, json.dumps(result.summary(), indent=2) + "\n")
    return result


__all__ = [
    "BornAgainResult",
    "GenerationResult",
    "derived_seed",
    "ensemble_log_probs",
    "generation_seed",
    "run_born_again",
]
