"""What the NetAug benchmark trains: the models (two tiny, one large), the four methods, the
teacher of the KD rows, and the run config of every cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdistill.config import RunConfig, parse_config

MODELS: dict[str, dict[str, Any]] = {
    "mlp-30-30": {
        "label": "MLP 784-30-30-10 (tiny)",
        "size": "tiny",
        "model": {"name": "mlp", "kwargs": {"hidden_sizes": [30, 30]}},
        "lr": 0.05,
    },
    "cnn-4-8-16": {
        "label": "CNN 4-8-16, global pool (tiny)",
        "size": "tiny",
        "model": {"name": "cnn", "kwargs": {"channels": [4, 8, 16]}},
        "lr": 0.1,
    },
    "mlp-800-800": {
        "label": "MLP 784-800-800-10 (large)",
        "size": "large",
        "model": {"name": "mlp", "kwargs": {"hidden_sizes": [800, 800]}},
        "lr": 0.05,
    },
}

METHODS = ("baseline", "kd", "netaug", "netaug-kd")
METHOD_LABELS = {
    "baseline": "Baseline (labels)",
    "kd": "KD",
    "netaug": "NetAug",
    "netaug-kd": "NetAug + KD",
}

TEACHER: dict[str, Any] = {
    "label": "MLP 784-1200-1200-10",
    "model": {"name": "mlp", "kwargs": {"hidden_sizes": [1200, 1200]}},
    "lr": 0.05,
}
"""Hinton et al.'s teacher size without its dropout: on a shared 2-core CPU a CNN teacher cost
a minute an epoch, and one tried (32-64 channels, flattened map, lr 0.05) trained badly."""

KD = {"temperature": 4.0, "soft_target_weight": 0.9, "hard_target_weight": 0.1}
"""As in the methods benchmark (``kdistill bench methods``)."""

NETAUG = {"width_multipliers": [1.0, 1.8, 2.6], "aug_weight": 1.0, "stop_fraction": 0.5}
"""The issue's width multipliers; alpha 1; augmentation during the first half of training."""


def _base(data: str, seed: int, epochs: int, model: dict[str, Any], lr: float) -> dict[str, Any]:
    return {
        "seed": seed,
        "data": {"name": data},
        "model": model,
        "train": {
            "epochs": epochs,
            "batch_size": 100,
            "eval_batch_size": 1000,
            "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9, "nesterov": True},
            # One epoch of linear warm-up in every cell: without it KD's first steps (T^2 x the
            # soft-target gradient) killed the 30-unit MLP's ReLUs (9,000 test errors on
            # Fashion-MNIST, seed 0); the README measures the same at T = 20.
            "schedule": {"name": "cosine", "warmup_epochs": 1},
            "progress": False,
            "threads": 1,
        },
    }


def teacher_config(data: str, epochs: int) -> RunConfig:
    """The one teacher of a data set's KD rows (seed 0, shared by every seed's students)."""
    return parse_config(_base(data, 0, epochs, TEACHER["model"], TEACHER["lr"]))


def cell_config(
    data: str, model_key: str, method: str, seed: int, epochs: int, teacher: Path
) -> RunConfig:
    """One cell: ``model_key`` trained by ``method`` with ``seed``; the KD methods read the
    teacher file ``teacher``."""
    spec = MODELS[model_key]
    raw = _base(data, seed, epochs, spec["model"], spec["lr"])
    kd = {"teachers": [{"checkpoint": str(teacher)}], **KD}
    if method == "kd":
        raw["distill"] = kd
    elif method == "netaug":
        raw["netaug"] = dict(NETAUG)
    elif method == "netaug-kd":
        raw["netaug"] = {**NETAUG, "distill": kd}
    elif method != "baseline":
        raise ValueError(f"unknown method {method!r}")
    return parse_config(raw)
