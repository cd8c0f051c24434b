"""``kdistill bench speed``: how fast kdistill trains, measured side by side with the loop users
write by hand, on the same data and models, in one run.

Rows (one epoch over MNIST's 60,000 training images each, the paper's 784-1200-1200-10 teacher
and 784-800-800-10 student, batch 128): the hand-written loop (``reference_loop``), and
kdistill's one engine (``engine.fit``) training the student alone, distilling from a cached
teacher and from a live teacher. The rows run in turns, ``rounds`` times, in a rotated order,
so a busy neighbour slows every row alike; each row's figure is its median over the rounds.

Beside them: the FLOPs each step needs divided by its time, as a fraction of the fp32 matmul
throughput this machine reaches on exactly those matrix shapes (measured in the same run); how
epoch time grows with the transfer set (x1, x2, x4) and the teacher's width (1200, 2400); what
the per-shift teacher cache saves on a jittered transfer set with the CNN teacher of the
``hinton-mnist`` beyond stage; and where a cached-teacher step spends its time (profiler).
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdistill.data import TrainingData, load_dataset
from kdistill.engine.objective import Objective, SupervisedObjective
from kdistill.files import cache_dir
from kdistill.losses.base import LossTerm
from kdistill.losses.logits import HardTargetLoss, SoftTargetLoss
from kdistill.methods import Distiller
from kdistill.studies.speed.layout import measure_memory_layout
from kdistill.studies.speed.reference_loop import hand_written_epoch
from kdistill.studies.speed.timing import CNN_TEACHER, matmul_peak, seeded_model
from kdistill.studies.speed.timing import fit_samples_per_second as timed_epoch
from kdistill.teachers import Teacher, teacher_logits_for_split

TEACHER = {"hidden_sizes": [1200, 1200], "input_dropout": 0.2, "hidden_dropout": 0.5}
STUDENT = {"hidden_sizes": [800, 800]}
TEMPERATURE = 20.0
SOFT_TARGET_WEIGHT = 0.9
LR = 0.01

HAND = "hand-written loop, live teacher"
PLAIN = "kdistill, student alone"
CACHED = "kdistill, cached teacher"
LIVE = "kdistill, live teacher"
CACHED_FUSED = "kdistill, cached teacher, fused optimizer step"
ROWS = (HAND, PLAIN, CACHED, LIVE, CACHED_FUSED)


@dataclass
class SpeedSettings:
    output_dir: Path
    rounds: int = 3
    batch_size: int = 128
    threads: int | None = None
    scaling: bool = True
    jitter: bool = True
    beyond_epochs: int = 60
    """Epochs of the hinton-mnist beyond stage (full profile), for the saving it gets."""
    jitter_train_size: int = 6000
    """Images the per-shift cache row is timed on (every cost in it is linear in the count,
    so the report scales it to the full transfer set and says so)."""
    profile_steps: int = 100
    layout_train_size: int = 6000
    """Images the memory-layout row trains the CNN teacher on (0: skip the row)."""
    train_size: int | None = None
    """The first this many training images (default all 60,000; tests use a few hundred)."""
    command: str = "kdistill bench speed"


def _terms() -> list[LossTerm]:
    return [SoftTargetLoss(SOFT_TARGET_WEIGHT, TEMPERATURE), HardTargetLoss(1 - SOFT_TARGET_WEIGHT)]


def fit_samples_per_second(
    objective: Objective, data: TrainingData, batch_size: int, seed: int = 0, fused: bool = False
) -> float:
    """:func:`~kdistill.studies.speed.timing.fit_samples_per_second` at the MLP rows' ``LR``."""
    return timed_epoch(objective, data, batch_size, seed, lr=LR, fused=fused)


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def training_flops(shapes: list[tuple[int, int]]) -> int:
    """Matmul FLOPs per example of one training step of an MLP: the forward product, the
    weight gradient, and the input gradient of every layer but the first (nothing needs it)."""
    macs = sum(i * o for i, o in shapes)
    return 2 * (3 * macs - shapes[0][0] * shapes[0][1])


def forward_flops(shapes: list[tuple[int, int]]) -> int:
    return 2 * sum(i * o for i, o in shapes)


def matmul_rate(
    train_shapes: list[tuple[int, int]],
    forward_shapes: list[tuple[int, int]],
    batch_size: int,
    steps: int = 60,
    repeats: int = 3,
) -> float:
    """FLOP/s of exactly the products one step needs (``train_shapes`` forward and backward,
    ``forward_shapes`` forward only) at ``batch_size``, best of ``repeats`` timings."""
    rows = batch_size

    def operands(shapes: list[tuple[int, int]]) -> list[tuple[torch.Tensor, ...]]:
        return [(torch.randn(rows, i), torch.randn(o, i), torch.randn(rows, o)) for i, o in shapes]

    train, forward = operands(train_shapes), operands(forward_shapes)

    def step() -> None:
        for x, w, _ in forward + train:
            torch.mm(x, w.t())
        for index, (x, w, g) in enumerate(train):
            torch.mm(g.t(), x)
            if index:
                torch.mm(g, w)

    flops = rows * (training_flops(train_shapes) + forward_flops(forward_shapes))
    step()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - started) / steps)
    return flops / best


def _rotated(rows: tuple[str, ...], round_index: int) -> list[str]:
    shift = round_index % len(rows)
    return list(rows[shift:] + rows[:shift])


def measure_rows(
    settings: SpeedSettings, data: TrainingData, cached: torch.Tensor, teacher: Teacher
) -> dict[str, list[float]]:
    """Samples/s of every row in every round (rows rotated each round)."""
    float_images = data.train.inputs.float().div_(255)
    labels = data.train.labels
    rates: dict[str, list[float]] = {row: [] for row in ROWS}
    makers: dict[str, Callable[[int], float]] = {
        HAND: lambda seed: hand_written_epoch(
            teacher.members[0],
            seeded_model("mlp", seed, **STUDENT),
            float_images,
            labels,
            batch_size=settings.batch_size,
            temperature=TEMPERATURE,
            alpha=SOFT_TARGET_WEIGHT,
            lr=LR,
            seed=seed,
        ),
        PLAIN: lambda seed: fit_samples_per_second(
            SupervisedObjective(seeded_model("mlp", seed, **STUDENT)),
            data,
            settings.batch_size,
            seed,
        ),
        CACHED: lambda seed: fit_samples_per_second(
            Distiller(seeded_model("mlp", seed, **STUDENT), teacher, _terms(), cached),
            data,
            settings.batch_size,
            seed,
        ),
        LIVE: lambda seed: fit_samples_per_second(
            Distiller(seeded_model("mlp", seed, **STUDENT), teacher, _terms()),
            data,
            settings.batch_size,
            seed,
        ),
        CACHED_FUSED: lambda seed: fit_samples_per_second(
            Distiller(seeded_model("mlp", seed, **STUDENT), teacher, _terms(), cached),
            data,
            settings.batch_size,
            seed,
            fused=True,
        ),
    }
    for round_index in range(settings.rounds):
        for row in _rotated(ROWS, round_index):
            rates[row].append(makers[row](round_index))
            print(f"  round {round_index + 1}: {row}: {rates[row][-1]:,.0f} samples/s", flush=True)
    return rates


def measure_scaling(
    settings: SpeedSettings, data: TrainingData, cached: torch.Tensor
) -> dict[str, list[dict[str, float]]]:
    """Epoch seconds of the cached-teacher row for x1, x2, x4 transfer sets, and of the
    live-teacher row for teachers 1200 and 2400 wide."""
    size_rows = []
    count = len(data.train)
    for factor in (1, 2, 4):
        repeat = torch.arange(count * factor) % count
        larger = TrainingData(data.train.subset(repeat), data.eval_splits, data.dataset)
        # The teacher's logits of a repeated set are its logits repeated.
        objective = Distiller(
            seeded_model("mlp", 0, **STUDENT), None, _terms(), cached[:, repeat].contiguous()
        )
        rate = fit_samples_per_second(objective, larger, settings.batch_size)
        size_rows.append(
            {"factor": factor, "examples": count * factor, "seconds": count * factor / rate}
        )
        print(f"  transfer set x{factor}: {size_rows[-1]['seconds']:.1f} s/epoch", flush=True)
    width_rows = []
    for width in (1200, 2400):
        teacher = Teacher([seeded_model("mlp", 1, **{**TEACHER, "hidden_sizes": [width, width]})])
        objective = Distiller(seeded_model("mlp", 0, **STUDENT), teacher, _terms())
        rate = fit_samples_per_second(objective, data, settings.batch_size)
        width_rows.append({"teacher_width": width, "seconds": count / rate})
        print(f"  live teacher {width} wide: {width_rows[-1]['seconds']:.1f} s/epoch", flush=True)
    return {"transfer_set": size_rows, "teacher_width": width_rows}


def measure_jitter_cache(settings: SpeedSettings, data: TrainingData) -> dict[str, float]:
    """The beyond stage's setting (CNN teacher, 800-800 student, jitter +-2 px): a live-teacher
    epoch, the per-shift cache's one-off build, and a cached epoch, timed on the first
    ``jitter_train_size`` images and scaled to the whole transfer set."""
    count = min(settings.jitter_train_size, len(data.train))
    train = data.train.subset(torch.arange(count))
    jittered = TrainingData(train, data.eval_splits, data.dataset, max_shift=2)
    teacher = Teacher([seeded_model("cnn", 2, **CNN_TEACHER)])
    with tempfile.TemporaryDirectory(prefix="kdistill-speed-cache-") as folder:
        started = time.perf_counter()
        cached = teacher_logits_for_split(teacher, train, folder, max_shift=2)
        build_seconds = time.perf_counter() - started
    live = fit_samples_per_second(
        Distiller(seeded_model("mlp", 0, **STUDENT), teacher, _terms()),
        jittered,
        settings.batch_size,
    )
    from_cache = fit_samples_per_second(
        Distiller(seeded_model("mlp", 0, **STUDENT), teacher, _terms(), cached),
        jittered,
        settings.batch_size,
    )
    scale = len(data.train) / count
    live_seconds, cached_seconds = scale * count / live, scale * count / from_cache
    build_seconds *= scale
    epochs = settings.beyond_epochs
    return {
        "timed_examples": count,
        "scaled_to_examples": len(data.train),
        "build_seconds": build_seconds,
        "live_epoch_seconds": live_seconds,
        "cached_epoch_seconds": cached_seconds,
        "beyond_epochs": epochs,
        "beyond_live_seconds": epochs * live_seconds,
        "beyond_cached_seconds": build_seconds + epochs * cached_seconds,
        "cache_megabytes": scale * cached.numel() * cached.element_size() / 2**20,
    }


def profile_cached_step(
    settings: SpeedSettings, data: TrainingData, cached: torch.Tensor, top: int = 15
) -> list[dict[str, Any]]:
    """The operators a cached-teacher epoch spends its time in (self CPU time), from
    ``torch.profiler`` over ``profile_steps`` steps of ``engine.fit``."""
    from torch.profiler import ProfilerActivity, profile

    count = min(settings.profile_steps * settings.batch_size, len(data.train))
    subset = torch.arange(count)
    small = TrainingData(
        data.train.subset(subset),
        {"test": data.eval_splits["test"].subset(torch.arange(200))},
        data.dataset,
    )
    objective = Distiller(
        seeded_model("mlp", 0, **STUDENT), None, _terms(), cached[:, subset].contiguous()
    )
    fit_samples_per_second(objective, small, settings.batch_size)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        fit_samples_per_second(objective, small, settings.batch_size)
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events) or 1.0
    ranked = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[:top]
    return [
        {
            "operator": event.key,
            "calls": int(event.count),
            "self_ms": event.self_cpu_time_total / 1000,
            "share": event.self_cpu_time_total / total,
        }
        for event in ranked
    ]


def run_speed_benchmark(settings: SpeedSettings) -> dict[str, Any]:
    """Measure every table of the speed report; returns its results (written by ``report``)."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    dataset = load_dataset("mnist", cache_dir=cache_dir())
    train = dataset.train
    if settings.train_size is not None:
        train = train.subset(torch.arange(min(settings.train_size, len(train))))
    data = TrainingData(train, {"test": dataset.test.subset(torch.arange(1000))}, dataset)
    teacher = Teacher([seeded_model("mlp", 1, **TEACHER)])
    started = time.perf_counter()
    cached = teacher_logits_for_split(teacher, data.train, cache_dir())
    cache_seconds = time.perf_counter() - started
    student_shapes, teacher_shapes = (
        linear_shapes(seeded_model("mlp", 0, **STUDENT)),
        linear_shapes(teacher),
    )
    print("matmul throughput on the step's shapes ...", flush=True)
    cached_rate = matmul_rate(student_shapes, [], settings.batch_size)
    live_rate = matmul_rate(student_shapes, teacher_shapes, settings.batch_size)
    print("rows ...", flush=True)
    rates = measure_rows(settings, data, cached, teacher)
    # Measured again after the rows, the best of the two kept: a neighbour busy during one
    # measurement must not make kdistill look faster than the products it is made of.
    cached_rate = max(cached_rate, matmul_rate(student_shapes, [], settings.batch_size))
    live_rate = max(live_rate, matmul_rate(student_shapes, teacher_shapes, settings.batch_size))
    results: dict[str, Any] = {
        "command": settings.command,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "batch_size": settings.batch_size,
        "rounds": settings.rounds,
        "train_examples": len(data.train),
        "teacher_logit_cache_seconds": cache_seconds,
        "rows": {},
        "matmul": {
            "student_training_flops_per_example": training_flops(student_shapes),
            "teacher_forward_flops_per_example": forward_flops(teacher_shapes),
            "same_shape_rate_cached": cached_rate,
            "same_shape_rate_live": live_rate,
        },
    }
    hand = statistics.median(rates[HAND])
    for row in ROWS:
        median = statistics.median(rates[row])
        flops = training_flops(student_shapes) + (
            forward_flops(teacher_shapes) if row in (HAND, LIVE) else 0
        )
        same_shape = live_rate if row in (HAND, LIVE) else cached_rate
        per_round = [rate / base for rate, base in zip(rates[row], rates[HAND], strict=True)]
        results["rows"][row] = {
            "samples_per_second": rates[row],
            "median": median,
            "ratio_to_hand_loop": median / hand,
            "ratio_to_hand_loop_per_round": per_round,
            "gflops": median * flops / 1e9,
            "fraction_of_same_shape_matmul": median * flops / same_shape,
        }
    results["cached_over_plain"] = (
        results["rows"][CACHED]["median"] / results["rows"][PLAIN]["median"]
    )
    if settings.scaling:
        print("scaling ...", flush=True)
        results["scaling"] = measure_scaling(settings, data, cached)
    if settings.jitter:
        print("jittered transfer set (CNN teacher) ...", flush=True)
        results["jitter_cache"] = measure_jitter_cache(settings, data)
    if settings.layout_train_size:
        print("memory layout (CNN teacher) ...", flush=True)
        results["memory_layout"] = measure_memory_layout(
            data, settings.layout_train_size, 100, settings.rounds
        )
    if settings.profile_steps:
        print("profile ...", flush=True)
        results["profile"] = profile_cached_step(settings, data, cached)
    results["matmul"]["peak_square_2048"] = matmul_peak()
    return results
