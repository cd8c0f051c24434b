"""Training the specialists (Hinton et al. 2015, section 5), each an independent unit of work.

A specialist starts from the generalist's weights with an output layer over its classes plus
one dustbin class for all the others; its batches are half from its classes and half random
from the rest (a :class:`SpecialistTask` whose loader is a
:class:`~kdistill.data.BalancedBatchLoader`); it minimises cross-entropy in the engine's one
loop (:class:`~kdistill.engine.SupervisedObjective` on the relabelled data). Afterwards its
dustbin logit is raised to undo the oversampling (:func:`dustbin_shift`).

Each specialist is one :func:`kdistill.files.run_once` unit in its own folder, trained with
``resume=True``: ``--workers N`` runs them in N processes of one thread each, and a killed run
restarts only the unfinished ones, each from its last epoch checkpoint. Under torchrun the
processes train one specialist at a time together (each takes its share of every batch).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from kdistill.config import TrainRunConfig, config_digest
from kdistill.data import (
    BalancedBatchLoader,
    DataSet,
    Split,
    TrainingData,
    load_dataset,
    prepare_data,
)
from kdistill.engine import (
    SupervisedObjective,
    fit,
    is_main_process,
    load_model,
    save_model,
    under_torchrun,
    wait_for_main,
)
from kdistill.errors import KDistillError
from kdistill.files import cache_dir, run_once
from kdistill.methods.common import derived_seed, file_sha256, fit_settings, write_run_config
from kdistill.models import apply_class_bias_shift, subset_head
from kdistill.tasks import ClassificationTask

__all__ = [
    "SpecialistJob",
    "SpecialistTask",
    "dustbin_shift",
    "load_specialist",
    "specialist_labels",
    "train_specialist",
    "train_specialists",
]

SPECIALIST_FILE = "specialist.safetensors"


def dustbin_shift(
    subset_fraction: float, batch_share: float = 0.5, rule: Literal["paper", "prior"] = "paper"
) -> float:
    """How much to raise a specialist's dustbin logit after training.

    ``subset_fraction`` f is the share of the specialist's classes in the training data and
    ``batch_share`` s their share in its batches. ``paper``: "the log of the proportion by which
    the specialist subset is oversampled", ``log(s / f)`` (section 5). ``prior``: the full
    correction of the class prior, which also counts the dustbin's undersampling,
    ``log(s / f) + log((1 - f) / (1 - s))`` (for s = 1/2, ``log((1 - f) / f)``).
    """
    if not 0 < subset_fraction < 1 or not 0 < batch_share < 1:
        raise KDistillError(
            f"dustbin shift needs 0 < f, s < 1, got f={subset_fraction}, s={batch_share}"
        )
    shift = math.log(batch_share / subset_fraction)
    if rule == "prior":
        shift += math.log((1 - subset_fraction) / (1 - batch_share))
    elif rule != "paper":
        raise KDistillError(f"unknown dustbin shift rule {rule!r}: use paper or prior")
    return shift


def specialist_labels(labels: torch.Tensor, classes: list[int], num_classes: int) -> torch.Tensor:
    """Labels in a specialist's output space: class ``classes[j]`` -> ``j``, any other class ->
    the dustbin ``len(classes)``."""
    mapping = torch.full((num_classes,), len(classes), dtype=torch.long)
    mapping[torch.tensor(classes, dtype=torch.long)] = torch.arange(len(classes))
    return mapping[labels]


@dataclass
class SpecialistTask(ClassificationTask):
    """Classification whose training batches are ``batch_share`` from the classes other than
    the dustbin (the last label) and the rest from the dustbin."""

    dustbin: int = 0
    batch_share: float = 0.5
    name = "specialist-classification"

    def loader(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        max_shift: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
    ) -> BalancedBatchLoader:
        return BalancedBatchLoader(
            split,
            batch_size,
            split.labels != self.dustbin,
            share=self.batch_share,
            seed=seed,
            max_shift=max_shift,
            device=device,
            rank=rank,
            world_size=world_size,
        )


@dataclass
class SpecialistJob:
    """One specialist: its classes and where it trains. ``config`` is the generalist's run
    config with the specialist's ``train`` section, ``seed`` and ``output_dir``."""

    index: int
    classes: list[int]
    generalist: str
    config: TrainRunConfig
    batch_share: float = 0.5
    shift_rule: Literal["paper", "prior"] = "paper"

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)

    def identity(self) -> dict[str, Any]:
        return {
            "specialist": self.index,
            "classes": self.classes,
            "generalist_sha256": file_sha256(self.generalist),
            "config_digest": config_digest(self.config),
            "batch_share": self.batch_share,
            "shift_rule": self.shift_rule,
        }


def _specialist_data(data: TrainingData, classes: list[int]) -> TrainingData:
    num_classes = data.num_classes

    def relabel(split: Split) -> Split:
        labels = specialist_labels(split.labels, classes, num_classes)
        return Split(split.inputs, labels, split.encoding)

    return TrainingData(
        relabel(data.train),
        {name: relabel(split) for name, split in data.eval_splits.items() if name == "test"},
        max_shift=data.max_shift,
    )


def train_specialist(job: SpecialistJob, dataset: DataSet | None = None) -> tuple[dict, bool]:
    """Train one specialist unless its folder already holds it; returns ``(result, cached)``.

    ``result`` has the classes, the dustbin shift applied to ``specialist.safetensors``, the
    test metrics in the specialist's own label space and the seconds it took.
    """
    config = job.config

    def compute() -> dict[str, Any]:
        started = time.perf_counter()
        data = prepare_data(config.data, config.seed, dataset)
        generalist, _ = load_model(job.generalist)
        model = subset_head(generalist, job.classes, dustbin=True)
        specialist_data = _specialist_data(data, job.classes)
        dustbin = len(job.classes)
        subset_fraction = float((specialist_data.train.labels != dustbin).float().mean())
        # The generalist's seed carves the same validation split; the batches get their own.
        settings = fit_settings(
            config, job.run_dir, seed=derived_seed(config.seed, f"specialist-{job.index}")
        )
        settings.task = SpecialistTask(dustbin=dustbin, batch_share=job.batch_share)
        settings.description = f"specialist {job.index}"
        recipe = dict(config.model.model_dump())
        recipe["kwargs"] = {**recipe["kwargs"], "num_classes": dustbin + 1}
        settings.recipes = {"model": recipe}
        settings.metadata = {"config_digest": config_digest(config), "classes": job.classes}
        write_run_config(config)
        result = fit(SupervisedObjective(model), specialist_data, settings, resume=True)
        shift = dustbin_shift(subset_fraction, job.batch_share, job.shift_rule)
        apply_class_bias_shift(model, {dustbin: shift})
        if is_main_process():  # under torchrun, rank 0 writes for every process
            save_model(
                job.run_dir / SPECIALIST_FILE,
                model,
                recipe,
                classes=job.classes,
                dustbin_shift=shift,
                input_encoding=data.encoding.describe(),
            )
        wait_for_main()  # the ensemble reads the file next, in every process
        return {
            "index": job.index,
            "classes": job.classes,
            "subset_fraction": subset_fraction,
            "dustbin_shift": shift,
            "epochs": len(result.history),
            "test": {k: v for k, v in result.final["model"]["test"].items() if k != "confusion"},
            "seconds": time.perf_counter() - started,
        }

    return run_once(job.run_dir, job.identity(), compute)


def _train_in_worker(job: SpecialistJob) -> tuple[dict, bool]:
    torch.set_num_threads(1)
    dataset = load_dataset(job.config.data.name, cache_dir=cache_dir())
    return train_specialist(job, dataset)


def train_specialists(jobs: list[SpecialistJob], workers: int = 1) -> tuple[list[dict], float]:
    """Train every job in ``workers`` processes (one thread each); returns the results in job
    order and the wall seconds. Finished specialists are read back, unfinished ones resume."""
    if workers < 1:
        raise KDistillError(f"--workers must be at least 1, got {workers}")
    started = time.perf_counter()
    if under_torchrun():
        # torchrun's processes already share every specialist's batches (DistributedDataParallel),
        # one specialist after another; worker processes of their own would each start a
        # process group of the wrong size.
        if workers > 1:
            raise KDistillError(
                f"--workers {workers} under torchrun: the processes torchrun started already "
                "train each specialist together; drop --workers (or run without torchrun)"
            )
        outcomes = [train_specialist(job) for job in jobs]
        return [result for result, _ in outcomes], time.perf_counter() - started
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, max(len(jobs), 1)), mp_context=context
    ) as pool:
        outcomes = list(pool.map(_train_in_worker, jobs))
    return [result for result, _ in outcomes], time.perf_counter() - started


def load_specialist(run_dir: str | Path) -> tuple[torch.nn.Module, list[int]]:
    """A trained specialist (dustbin shift applied) and its classes."""
    model, metadata = load_model(Path(run_dir) / SPECIALIST_FILE)
    return model, [int(c) for c in metadata["classes"]]
