"""The Python API: distil your own ``nn.Module`` objects on your own tensors in one call.

    student = kdistill.distill(teacher, student, (x_train, y_train), (x_test, y_test),
                               temperature=4, epochs=10).model

The same engine, checkpoints and resume as the CLI run underneath: each call is one
:func:`kdistill.engine.fit` into ``output_dir``, which holds ``metrics.jsonl``, a resumable
``checkpoint.safetensors`` and the trained model as ``student.safetensors`` / ``model.safetensors``
with the recipe that rebuilds it (the model's ``package.module:Class``, or ``model_spec``) and
the input encoding, so ``kdistill evaluate`` works on it. Nothing below this module imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdistill.config import TrainConfig
from kdistill.data import Split, TrainingData
from kdistill.data.dataset import inputs_to_array, labels_to_int64
from kdistill.engine import FitSettings, SupervisedObjective, fit, resolve_device
from kdistill.errors import KDistillError
from kdistill.files import cache_dir, folder_lock
from kdistill.losses.base import LossTerm
from kdistill.methods.common import settle_run_folder
from kdistill.methods.distill import Distiller
from kdistill.methods.terms import build_terms, use_cached_logits
from kdistill.tasks import create_task
from kdistill.teachers import Teacher, teacher_logits_for_split

__all__ = ["Trained", "as_split", "distill", "train"]

DataLike = Split | tuple[Any, Any] | Dataset | DataLoader
"""``(inputs, labels)`` tensors or arrays, a ``Dataset`` of ``(input, label)`` pairs, a
``DataLoader`` over one, or a :class:`~kdistill.data.Split`."""


@dataclass
class Trained:
    """The trained model and its run: per-epoch ``history`` and ``final`` metrics
    (model name -> split -> errors, accuracy, per-class errors, confusion)."""

    model: nn.Module
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)

    def errors(self, split: str = "test") -> int:
        """Errors of the trained model on ``split`` after the last epoch."""
        metrics: dict[str, Any] = next(iter(self.final.values()), {})
        if split not in metrics:
            raise KDistillError(
                f"no {split!r} split was evaluated: pass eval_data (or {{{split!r}: data}})"
            )
        return int(metrics[split]["errors"])


def _tensor(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _collect(batches: Iterable[Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    inputs, labels = [], []
    for item in batches:
        if not (isinstance(item, Sequence) and len(item) == 2):
            raise KDistillError(
                f"{where} yields {type(item).__name__}, expected (input, label) pairs"
            )
        inputs.append(_tensor(item[0]))
        labels.append(_tensor(item[1]))
    if not inputs:
        raise KDistillError(f"{where} is empty: give at least one example")
    return np.concatenate(inputs), np.concatenate(labels)


def as_split(data: DataLike, where: str = "data") -> Split:
    """Hold ``data`` in memory as a :class:`Split` (the engine slices batches from it).

    A ``DataLoader`` or ``Dataset`` is read once, in order; uint8 images stay uint8 (scaled
    by 1/255 when batched), float inputs of any shape stay float32.
    """
    if isinstance(data, Split):
        return data
    if isinstance(data, DataLoader):
        x, y = _collect(data, where)
    elif isinstance(data, Dataset):
        x, y = _collect(DataLoader(data, batch_size=1024, shuffle=False), where)
    elif isinstance(data, tuple | list) and len(data) == 2:
        x, y = _tensor(data[0]), _tensor(data[1])
    else:
        raise KDistillError(
            f"{where} is a {type(data).__name__}: give (inputs, labels), a Dataset, a DataLoader "
            "or a kdistill Split"
        )
    inputs = inputs_to_array(x, f"{where} inputs")
    labels = labels_to_int64(
        y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y, f"{where} labels"
    )
    if len(inputs) != len(labels):
        raise KDistillError(
            f"{where} has {len(inputs)} inputs but {len(labels)} labels: give one label per input"
        )
    return Split(torch.from_numpy(inputs), torch.from_numpy(labels))


def _eval_splits(eval_data: DataLike | Mapping[str, DataLike] | None) -> dict[str, Split]:
    if eval_data is None:
        return {}
    if isinstance(eval_data, Mapping):
        return {name: as_split(data, f"eval_data[{name!r}]") for name, data in eval_data.items()}
    return {"test": as_split(eval_data, "eval_data")}


def _recipe(model: nn.Module, spec: str | None, kwargs: Mapping[str, Any] | None) -> dict | None:
    """How ``kdistill evaluate`` rebuilds the model: ``spec`` if given, else its class by
    import path when the class is importable (not defined in ``__main__`` or a function)."""
    if spec is not None:
        return {"name": spec, "kwargs": dict(kwargs or {})}
    cls = type(model)
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return None
    if cls.__module__.startswith("torch.nn"):
        return None  # e.g. nn.Sequential: its layers are not constructor arguments
    return {"name": f"{cls.__module__}:{cls.__qualname__}", "kwargs": dict(kwargs or {})}


def _settle(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """As the CLI does: a folder holding a run is refused unless ``resume`` or ``overwrite``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(run_dir):
        settle_run_folder(run_dir, resume=resume, overwrite=overwrite)


def _settings(
    output_dir: str | Path,
    seed: int,
    description: str,
    recipes: dict[str, dict | None],
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    device: str,
    train_options: Mapping[str, Any] | None,
    task: str = "classification",
) -> FitSettings:
    options = {"progress": False, **(train_options or {})}
    options["optimizer"] = {"name": optimizer, "lr": lr, **options.get("optimizer", {})}
    try:
        config = TrainConfig.model_validate(
            {"epochs": epochs, "batch_size": batch_size, "device": device, **options}
        )
    except ValueError as error:
        raise KDistillError(f"training options: {str(error).splitlines()[0]}") from None
    return FitSettings(
        train=config,
        run_dir=Path(output_dir),
        seed=seed,
        task=create_task(task),
        description=description,
        recipes=recipes,
    )


def train(
    model: nn.Module,
    train_data: DataLike,
    eval_data: DataLike | Mapping[str, DataLike] | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 0.1,
    optimizer: str = "sgd",
    output_dir: str | Path = "runs/model",
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    model_spec: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    train_options: Mapping[str, Any] | None = None,
    task: str = "classification",
) -> Trained:
    """Train ``model`` in place on the labels (cross-entropy, or the task's own loss): a
    teacher, or a baseline.

    ``train_options`` takes any other key of a config's ``train`` section (``schedule``,
    ``grad_clip``, ``threads`` ...). ``task`` is any registered task (``segmentation`` and
    ``detection`` take a :class:`~kdistill.data.Split` with masks ``[N, H, W]`` or boxes
    ``[N, K, 5]`` as labels, e.g. ``load_dataset("canvases-seg").train``). Saves
    ``output_dir/model.safetensors``. A folder holding another run is refused unless
    ``resume`` (continue it) or ``overwrite`` (replace it).
    """
    train_split = as_split(train_data, "train_data")
    data = TrainingData(train_split, _eval_splits(eval_data))
    settings = _settings(
        output_dir, seed, f"train {Path(output_dir).name}",
        {"model": _recipe(model, model_spec, model_kwargs)},
        epochs, batch_size, lr, optimizer, device, train_options, task,
    )  # fmt: skip
    settings.task.probe(model, train_split, f"model {type(model).__name__}")
    _settle(settings.run_dir, resume, overwrite)
    objective = SupervisedObjective(model, loss=settings.task.supervised_loss)
    result = fit(objective, data, settings, resume=resume)
    return Trained(model, result.run_dir, result.history, result.final)


def distill(
    teacher: nn.Module | Sequence[nn.Module],
    student: nn.Module,
    train_data: DataLike,
    eval_data: DataLike | Mapping[str, DataLike] | None = None,
    *,
    temperature: float = 4.0,
    soft_target_weight: float = 1.0,
    hard_target_weight: float = 0.1,
    use_labels: bool = True,
    ensemble_rule: str = "arithmetic",
    terms: Sequence[LossTerm | str | dict[str, Any]] = (),
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 0.1,
    optimizer: str = "sgd",
    output_dir: str | Path = "runs/student",
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    student_spec: str | None = None,
    student_kwargs: Mapping[str, Any] | None = None,
    train_options: Mapping[str, Any] | None = None,
    task: str = "classification",
) -> Trained:
    """Distil ``student`` (trained in place) from ``teacher`` or a list of teachers (their
    distributions averaged by ``ensemble_rule``), Hinton et al. (2015), section 2: minimise
    ``soft_target_weight * T^2 * CE(p_teacher(T), p_student(T)) + hard_target_weight *
    CE(y, p_student)``, plus any ``terms`` (registered kinds such as ``"fitnet"``, their
    config entries ``{"kind": "at", "weight": 100, ...}``, or your own LossTerm objects).

    ``use_labels=False`` trains on the soft targets alone (an unlabeled transfer set). The
    teacher is frozen and kept in eval mode; its logits are computed once when no term needs
    it live (classification only). ``task="segmentation"`` distils per pixel: set
    ``soft_target_weight=0`` and add ``{"kind": "pixel_kl"}`` (and ``{"kind": "pairwise",
    "student": PATH, "teacher": PATH}`` for Liu et al.'s pair-wise term); the hard targets are
    the masks. Saves ``output_dir/student.safetensors``.
    """
    members = list(teacher) if isinstance(teacher, Sequence) else [teacher]
    if not members:
        raise KDistillError("teacher is an empty list: give one model or several")
    train_split = as_split(train_data, "train_data")
    data = TrainingData(train_split, _eval_splits(eval_data))
    settings = _settings(
        output_dir, seed, f"distill {Path(output_dir).name}",
        {"student": _recipe(student, student_spec, student_kwargs)},
        epochs, batch_size, lr, optimizer, device, train_options, task,
    )  # fmt: skip
    probe = settings.task.probe
    student_outputs = probe(student, train_split, f"student {type(student).__name__}")
    for index, member in enumerate(members):
        outputs = probe(member, train_split, f"teacher {index} {type(member).__name__}")
        if outputs != student_outputs:
            raise KDistillError(
                f"teacher {index} outputs {outputs} classes and the student {student_outputs}: "
                "give both the same number of outputs"
            )
    loss_terms = build_terms(
        temperature=temperature,
        soft_target_weight=soft_target_weight,
        hard_target_weight=hard_target_weight,
        ensemble_rule=ensemble_rule,
        use_labels=use_labels,
        extra=terms,
    )
    frozen = Teacher(members)
    cached = None
    # Dense outputs ([N, classes, H, W] per example) are too large to cache: read live.
    if settings.task.name == "classification" and use_cached_logits(loss_terms, max_shift=0):
        cached = teacher_logits_for_split(
            frozen, train_split, cache_dir(), device=resolve_device(device)
        )
    objective = Distiller(
        student, frozen, loss_terms, cached_teacher_logits=cached, use_labels=use_labels
    )
    _settle(settings.run_dir, resume, overwrite)
    result = fit(objective, data, settings, resume=resume)
    return Trained(student, result.run_dir, result.history, result.final)
