"""What the GAN Compression benchmark trains: per data set a classifier (the feature space of
the metrics), a teacher GAN, and per seed the student generator trained from scratch as a
GAN, with each distillation term, and with all of them. Every run config is one of the
package's YAML files (``configs/gan-compression/``, linked at the top level) with the
benchmark's data set, seed, epochs and file paths set over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kdistill.config import (
    DistillRunConfig,
    RunConfig,
    TrainRunConfig,
    apply_overrides,
    parse_config,
)

CONFIGS = Path(__file__).parent / "configs"

STUDENTS = ("scratch", "reconstruction", "features", "all")
"""The student's four rows: from scratch as a GAN, + L1 to the teacher's image, + feature
distillation through 1x1 convolutions, + both (GAN Compression's full objective)."""

STUDENT_LABELS = {
    "scratch": "Student from scratch (GAN)",
    "reconstruction": "Student + reconstruction (L1)",
    "features": "Student + feature distillation (1x1 conv, MSE)",
    "all": "Student + reconstruction + features",
}


def _raw(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _quiet(raw: dict[str, Any]) -> dict[str, Any]:
    raw.setdefault("train", {}).update({"progress": False, "threads": 1})
    return raw


def classifier_config(data: str, epochs: int) -> RunConfig:
    """The feature-space classifier of one data set (seed 0)."""
    raw = _quiet(_raw("classifier"))
    return parse_config(apply_overrides(raw, [f"data.name={data}", f"train.epochs={epochs}"]))


def teacher_config(data: str, epochs: int, classifier: Path) -> RunConfig:
    """The teacher GAN of one data set (seed 0, shared by every seed's students)."""
    raw = _quiet(_raw("teacher"))
    overrides = [f"data.name={data}", f"train.epochs={epochs}", f"gan.classifier={classifier}"]
    return parse_config(apply_overrides(raw, overrides))


def student_config(
    data: str, student: str, seed: int, epochs: int, classifier: Path, teacher_dir: Path
) -> RunConfig:
    """One student row with ``seed``; the distilled rows read the teacher's generator and
    start their discriminator from the teacher's."""
    if student not in STUDENTS:
        raise ValueError(f"unknown student row {student!r}")
    raw = _quiet(_raw(f"student-{student}"))
    overrides = [
        f"seed={seed}",
        f"data.name={data}",
        f"train.epochs={epochs}",
        f"gan.classifier={classifier}",
    ]
    if student != "scratch":
        overrides += [
            f"gan.discriminator_init={teacher_dir / 'discriminator.safetensors'}",
            f"distill.teachers=[{{checkpoint: '{teacher_dir / 'model.safetensors'}'}}]",
        ]
    return parse_config(apply_overrides(raw, overrides))


def recipe(data: str) -> dict[str, Any]:
    """What the report says of the set-up, read from the configs it trains (never typed twice)."""
    teacher = teacher_config(data, 1, Path("classifier"))
    student = student_config(data, "all", 0, 1, Path("classifier"), Path("teacher"))
    assert isinstance(teacher, TrainRunConfig) and isinstance(student, DistillRunConfig)
    gan = teacher.gan
    assert gan is not None
    optimizer = teacher.train.optimizer
    features = [term for term in student.distill.terms if term.kind == "generator_features"]
    reconstruction = [term for term in student.distill.terms if term.kind == "reconstruction"]
    classifier = classifier_config(data, 1)
    return {
        "classifier": f"{classifier.model.name} {classifier.model.kwargs}",
        "teacher_channels": teacher.model.kwargs["channels"],
        "student_channels": student.model.kwargs["channels"],
        "discriminator_channels": gan.discriminator.kwargs.get("channels"),
        "loss": gan.loss,
        "optimizer": (
            f"{optimizer.name} lr {optimizer.lr:g}, betas {list(optimizer.betas)}, "
            f"{teacher.train.schedule.name} schedule"
        ),
        "batch_size": teacher.train.batch_size,
        "reconstruction_weight": reconstruction[0].weight if reconstruction else None,
        "feature_weights": {
            f"{term.model_extra.get('student')}": term.weight
            for term in features
            if term.model_extra is not None
        },
        "eval_samples": gan.eval_samples,
    }
