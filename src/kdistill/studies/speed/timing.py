"""The one timer of ``kdistill bench speed``: samples/s of one training epoch through
``engine.fit``, and the models its rows time."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdistill.config import OptimizerConfig, ScheduleConfig, TrainConfig
from kdistill.data import TrainingData
from kdistill.engine import FitSettings, fit
from kdistill.engine.objective import Objective
from kdistill.models import create_model

__all__ = ["CNN_TEACHER", "fit_samples_per_second", "matmul_peak", "seeded_model"]

# The hinton-mnist beyond stage's teacher (configs/hinton-mnist/cnn-teacher.yaml).
CNN_TEACHER = {"channels": [32, 64], "hidden_size": 256, "dropout": 0.3, "global_pool": False}


def seeded_model(kind: str, seed: int, **kwargs: Any) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(kind, **kwargs)


def fit_samples_per_second(
    objective: Objective,
    data: TrainingData,
    batch_size: int,
    seed: int = 0,
    *,
    lr: float,
    fused: bool = False,
    channels_last: bool = False,
) -> float:
    """Training samples/s of one epoch of ``objective`` on ``data`` through ``engine.fit``
    (the epoch as fit times it: batches, steps and meters; not the evaluation after it), SGD
    with momentum at a constant ``lr``."""
    train = TrainConfig(
        epochs=1,
        batch_size=batch_size,
        eval_batch_size=2000,
        optimizer=OptimizerConfig(name="sgd", lr=lr, momentum=0.9, fused=fused),
        schedule=ScheduleConfig(name="constant"),
        progress=False,
        channels_last=channels_last,
    )
    with tempfile.TemporaryDirectory(prefix="kdistill-speed-") as folder:
        result = fit(objective, data, FitSettings(train=train, run_dir=Path(folder), seed=seed))
    return float(result.history[-1]["samples_per_second"])


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of a ``size`` x ``size`` fp32 product: the machine's headline rate."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best
