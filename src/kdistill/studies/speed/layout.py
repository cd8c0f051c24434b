"""The memory-layout row of ``kdistill bench speed``: a convolutional teacher's training epoch
through ``engine.fit`` with its weights in the default (contiguous, NCHW) layout and in the
channels-last layout (``train.channels_last``), the two in turns so a busy neighbour slows
both alike."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from kdistill.config import OptimizerConfig, ScheduleConfig, TrainConfig
from kdistill.data import TrainingData
from kdistill.engine import FitSettings, SupervisedObjective, fit
from kdistill.models import create_model

# The hinton-mnist beyond stage's teacher (configs/hinton-mnist/cnn-teacher.yaml).
CNN_TEACHER = {"channels": [32, 64], "hidden_size": 256, "dropout": 0.3, "global_pool": False}


def _epoch_samples_per_second(train: TrainingData, batch_size: int, channels_last: bool) -> float:
    torch.manual_seed(0)
    model = create_model("cnn", **CNN_TEACHER)
    config = TrainConfig(
        epochs=1,
        batch_size=batch_size,
        optimizer=OptimizerConfig(name="sgd", lr=0.05, momentum=0.9),
        schedule=ScheduleConfig(name="constant"),
        progress=False,
        channels_last=channels_last,
    )
    with tempfile.TemporaryDirectory(prefix="kdistill-speed-layout-") as folder:
        result = fit(SupervisedObjective(model), train, FitSettings(config, Path(folder)))
    return float(result.history[-1]["samples_per_second"])


def measure_memory_layout(
    data: TrainingData, examples: int, batch_size: int, rounds: int
) -> dict[str, Any]:
    """Samples/s of the CNN teacher's training (jitter +-2 px, as the beyond stage trains it)
    on the first ``examples`` images, contiguous and channels-last in turns, ``rounds`` times."""
    count = min(examples, len(data.train))
    train = TrainingData(data.train.subset(torch.arange(count)), {}, data.dataset, max_shift=2)
    rates: dict[str, list[float]] = {"contiguous": [], "channels_last": []}
    _epoch_samples_per_second(train, batch_size, True)  # warm-up: oneDNN's kernels chosen
    for round_index in range(rounds):
        order = [False, True] if round_index % 2 == 0 else [True, False]
        for channels_last in order:
            rate = _epoch_samples_per_second(train, batch_size, channels_last)
            rates["channels_last" if channels_last else "contiguous"].append(rate)
    ratios = [
        last / plain
        for last, plain in zip(rates["channels_last"], rates["contiguous"], strict=True)
    ]
    return {
        "model": {"name": "cnn", **CNN_TEACHER},
        "examples": count,
        "batch_size": batch_size,
        "samples_per_second": rates,
        "median": {name: statistics.median(values) for name, values in rates.items()},
        "ratio_per_round": ratios,
        "ratio_median": statistics.median(ratios),
    }
