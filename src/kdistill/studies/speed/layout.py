"""The memory-layout row of ``kdistill bench speed``: a convolutional teacher's training epoch
through ``engine.fit`` with its weights in the default (contiguous, NCHW) layout and in the
channels-last layout (``train.channels_last``), the two in turns so a busy neighbour slows
both alike."""

from __future__ import annotations

import statistics
from typing import Any

import torch

from kdistill.data import TrainingData
from kdistill.engine import SupervisedObjective
from kdistill.studies.speed.timing import CNN_TEACHER, fit_samples_per_second, seeded_model


def _epoch_samples_per_second(train: TrainingData, batch_size: int, channels_last: bool) -> float:
    objective = SupervisedObjective(seeded_model("cnn", 0, **CNN_TEACHER))
    return fit_samples_per_second(
        objective, train, batch_size, lr=0.05, channels_last=channels_last
    )


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
