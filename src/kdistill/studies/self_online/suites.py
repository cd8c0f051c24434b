"""What the self/online benchmark trains: two suites (MNIST MLPs, Fashion-MNIST CNNs), the
fixed stratified training subset, and the run configs of the cohorts and the born-again chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdistill.config import RunConfig, parse_config
from kdistill.data import DataSet
from kdistill.data.subsets import stratified_indices

SUBSET_SEED = 1234
"""The training subset is one fixed stratified draw, the same for every seed: the spread over
seeds is then that of initialisation and batch order, not of the data."""

SUITES: dict[str, dict[str, Any]] = {
    "mnist": {
        "title": "MNIST, MLPs",
        "A": {"name": "mlp", "kwargs": {"hidden_sizes": [800, 800]}},
        "B": {"name": "mlp", "kwargs": {"hidden_sizes": [300, 300]}},
        "A_label": "MLP 800-800",
        "B_label": "MLP 300-300",
        "lr": 0.05,
        "epochs": 8,
    },
    "fashion-mnist": {
        "title": "Fashion-MNIST, CNNs",
        "A": {"name": "cnn", "kwargs": {"channels": [16, 32]}},
        "B": {"name": "mlp", "kwargs": {"hidden_sizes": [800, 800]}},
        "A_label": "CNN 16-32",
        "B_label": "MLP 800-800",
        "lr": 0.1,
        "epochs": 6,
    },
}


def subset(dataset: DataSet, size: int) -> DataSet:
    """A stratified ``size``-image training subset (the whole test set)."""
    if size >= len(dataset.train):
        return dataset
    indices = stratified_indices(dataset.train.labels, size, SUBSET_SEED)
    return DataSet(
        name=f"{dataset.name}-{size}",
        train=dataset.train.subset(indices),
        test=dataset.test,
        num_classes=dataset.num_classes,
        fingerprint=f"{dataset.fingerprint}-stratified-{size}-{SUBSET_SEED}",
    )


def base_config(suite: dict[str, Any], data: str, seed: int, epochs: int, out: Path) -> dict:
    return {
        "seed": seed,
        "output_dir": str(out),
        "data": {"name": data},
        "train": {
            "epochs": epochs,
            "batch_size": 100,
            # 200, not the default 2000: a 1-thread CPU evaluates the CNN 2x faster in
            # cache-sized batches, and evaluation runs every epoch.
            "eval_batch_size": 200,
            "optimizer": {"name": "sgd", "lr": suite["lr"], "momentum": 0.9, "nesterov": True},
            "schedule": {"name": "cosine"},
            "progress": False,
            "threads": 1,
        },
    }


def cohort_config(
    suite: dict[str, Any], data: str, seed: int, epochs: int, out: Path, second: str
) -> RunConfig:
    """Deep mutual learning of A with ``second`` (``"A"`` or ``"B"``), T = 1, KL weight 1."""
    raw = base_config(suite, data, seed, epochs, out)
    raw["mutual"] = {"members": [suite["A"], suite[second]], "kl_weight": 1.0, "temperature": 1.0}
    return parse_config(raw)


def ban_config(
    suite: dict[str, Any], data: str, seed: int, epochs: int, out: Path, teacher: Path
) -> RunConfig:
    """Born-again generations 1..3 of A from ``teacher`` (T = 1, CE + KD weights 1, 1)."""
    raw = base_config(suite, data, seed, epochs, out)
    raw["model"] = suite["A"]
    raw["born_again"] = {
        "generations": 3,
        "temperature": 1.0,
        "soft_target_weight": 1.0,
        "hard_target_weight": 1.0,
        "teacher": str(teacher),
    }
    return parse_config(raw)
