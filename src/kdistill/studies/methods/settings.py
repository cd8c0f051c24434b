"""What one ``kdistill bench methods`` invocation trains: its options, the data subset and the
run config of every cell (data set, variant, seed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdistill.config import RunConfig, parse_config
from kdistill.data import DataSet, load_dataset
from kdistill.data.subsets import stratified_indices
from kdistill.errors import KDistillError
from kdistill.files import cache_dir
from kdistill.studies.methods.catalogue import methods

DATASET_LABELS = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}
KD_TEMPERATURE = 4.0
KD_SOFT_WEIGHT = 0.9
KD_HARD_WEIGHT = 0.1
SUBSET_SEED = 0
"""The training subset is the same for every seed and method: only initialisation and batch
order change with the seed."""


@dataclass
class BenchSettings:
    """Options of ``kdistill bench methods`` (see the CLI help for each)."""

    datasets: list[str] = field(default_factory=lambda: ["fashion-mnist", "mnist"])
    seeds: int = 3
    epochs: int = 5
    train_size: int = 5_000
    test_size: int | None = None
    methods: list[str] = field(default_factory=lambda: list(methods()))
    output: Path = Path("runs/bench-methods/report")
    work_dir: Path = Path("runs/bench-methods")
    threads: int | None = None
    teacher_channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    student_channels: list[int] = field(default_factory=lambda: [4, 8, 16])
    batch_size: int = 50
    lr: float = 0.05

    def command_line(self) -> str:
        """The ``kdistill bench methods`` command that reproduces these settings."""
        parts = [
            "kdistill bench methods",
            f"--datasets {','.join(self.datasets)}",
            f"--seeds {self.seeds}",
            f"--epochs {self.epochs}",
            f"--train-size {self.train_size}",
        ]
        if self.test_size is not None:
            parts.append(f"--test-size {self.test_size}")
        if self.methods != list(methods()):
            parts.append(f"--methods {','.join(self.methods)}")
        if self.teacher_channels != [16, 32, 64]:
            parts.append(f"--teacher-channels {','.join(map(str, self.teacher_channels))}")
        if self.student_channels != [4, 8, 16]:
            parts.append(f"--student-channels {','.join(map(str, self.student_channels))}")
        if self.threads is not None:
            parts.append(f"--threads {self.threads}")
        parts += [f"--output {self.output}", f"--work-dir {self.work_dir}"]
        return " ".join(parts)

    def check(self) -> None:
        """Raise :class:`KDistillError` for options that cannot run."""
        unknown = [name for name in self.methods if name not in methods()]
        if unknown:
            raise KDistillError(
                f"unknown method(s) {', '.join(unknown)} for --methods: use any of "
                f"{', '.join(methods())}"
            )
        bad = [name for name in self.datasets if name not in DATASET_LABELS]
        if bad:
            raise KDistillError(
                f"unknown data set(s) {', '.join(bad)} for --datasets: use "
                f"{', '.join(DATASET_LABELS)}"
            )
        for name, value in (("--seeds", self.seeds), ("--epochs", self.epochs)):
            if value < 1:
                raise KDistillError(f"{name} must be at least 1, got {value}")
        if self.train_size < self.batch_size:
            raise KDistillError(
                f"--train-size {self.train_size} is below one batch ({self.batch_size}): "
                "use at least that many images"
            )

    def variants(self) -> list[str]:
        """Run names in table order: baseline, KD, each method alone, KD + each method."""
        return ["student", "kd", *self.methods, *(f"kd+{name}" for name in self.methods)]


def bench_dataset(name: str, train_size: int, test_size: int | None) -> DataSet:
    """``name`` with a stratified ``train_size`` training subset (same for every seed) and the
    whole test set, or a stratified ``test_size`` part of it."""
    full = load_dataset(name, cache_dir=cache_dir())
    train = full.train
    if train_size < len(train):
        train = train.subset(stratified_indices(train.labels, train_size, SUBSET_SEED))
    test = full.test
    if test_size is not None and test_size < len(test):
        test = test.subset(stratified_indices(test.labels, test_size, SUBSET_SEED))
    return DataSet(
        name=name,
        train=train,
        test=test,
        num_classes=full.num_classes,
        fingerprint=f"{full.fingerprint}|train{len(train)}|test{len(test)}",
    )


def _train_section(settings: BenchSettings) -> dict[str, Any]:
    return {
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "eval_batch_size": 1000,
        "optimizer": {"name": "sgd", "lr": settings.lr, "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"name": "cosine"},
        "threads": settings.threads,
        "progress": False,
    }


def _model(channels: Sequence[int]) -> dict[str, Any]:
    return {"name": "cnn", "kwargs": {"channels": list(channels)}}


def teacher_config(settings: BenchSettings, dataset: str, run_dir: Path) -> RunConfig:
    """The teacher of ``dataset``: hard labels, seed 0, the students' epochs and optimizer."""
    return parse_config(
        {
            "seed": 0,
            "output_dir": str(run_dir),
            "data": {"name": dataset},
            "model": _model(settings.teacher_channels),
            "train": _train_section(settings),
        }
    )


def variant_config(
    settings: BenchSettings, dataset: str, variant: str, seed: int, teacher: Path, run_dir: Path
) -> RunConfig:
    """The run config of one table cell: ``student``, ``kd``, ``<method>`` or ``kd+<method>``."""
    raw: dict[str, Any] = {
        "seed": seed,
        "output_dir": str(run_dir),
        "data": {"name": dataset},
        "model": _model(settings.student_channels),
        "train": _train_section(settings),
    }
    if variant != "student":
        with_kd = variant == "kd" or variant.startswith("kd+")
        method = variant.removeprefix("kd+") if variant != "kd" else None
        if method is not None and method not in methods():
            raise KDistillError(
                f"unknown benchmark variant {variant!r}: use one of {list(methods())}"
            )
        raw["distill"] = {
            "teachers": [{"checkpoint": str(teacher)}],
            "temperature": KD_TEMPERATURE,
            "soft_target_weight": KD_SOFT_WEIGHT if with_kd else 0.0,
            "hard_target_weight": KD_HARD_WEIGHT if with_kd else 1.0,
            "terms": methods()[method].term_entries() if method else [],
        }
    return parse_config(raw)
