"""Training throughput: plain student vs distillation with a cached and with a live teacher.

Prints, from one run on this machine: samples/s for each mode, the achieved FLOP/s of each
(matmul FLOPs of the MLPs' forward and backward passes), and that as a fraction of this
machine's own fp32 matmul peak measured in the same run. Usage:

    python benchmarks/throughput.py [--batches 300] [--batch-size 100] [--threads N] [--output benchmarks/results/throughput.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from kdistill.data import BatchLoader, load_dataset
from kdistill.engine.objective import SupervisedObjective
from kdistill.files import cache_dir
from kdistill.losses.logits import HardTargetLoss, SoftTargetLoss
from kdistill.methods.distill import Distiller
from kdistill.models import create_model
from kdistill.studies.speed.timing import matmul_peak
from kdistill.teachers import Teacher, teacher_logits_for_split

TEACHER = {
    "hidden_sizes": [1200, 1200],
    "input_dropout": 0.2,
    "hidden_dropout": 0.5,
    "max_norm": 3.5,
}
STUDENT = {"hidden_sizes": [800, 800]}


def linear_macs(model: torch.nn.Module) -> int:
    return sum(
        m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)
    )


def time_training(objective, loader, batches: int) -> float:
    optimizer = torch.optim.SGD(objective.trainable_parameters(), lr=0.01, momentum=0.9)
    objective.train()
    seen, started, iterator = 0, None, iter(loader)
    for index in range(batches + 20):
        if index == 20:  # warm-up batches are not timed
            started, seen = time.perf_counter(), 0
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        loss = sum(objective(batch).losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        objective.after_step()
        seen += len(batch.labels)
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default="benchmarks/results/throughput.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dataset = load_dataset("mnist", cache_dir=cache_dir())
    loader = BatchLoader(dataset.train, args.batch_size, shuffle=True, seed=0)
    loader.set_epoch(0)
    teacher = Teacher([create_model("mlp", **TEACHER)])
    student_macs, teacher_macs = linear_macs(create_model("mlp", **STUDENT)), linear_macs(teacher)
    # Training costs about 3x the forward pass (forward, input gradients, weight gradients).
    train_flops = 3 * 2 * student_macs
    started = time.perf_counter()
    logits_dir = cache_dir() / "teacher-logits"
    files_before = set(logits_dir.glob("*.safetensors")) if logits_dir.exists() else set()
    cached_logits = teacher_logits_for_split(teacher, dataset.train, cache_dir())
    cache_seconds = time.perf_counter() - started
    cache_hit = set(logits_dir.glob("*.safetensors")) == files_before

    peak = matmul_peak(repeats=10)
    modes = {
        "student, hard labels": (SupervisedObjective(create_model("mlp", **STUDENT)), train_flops),
        "distill, cached teacher": (
            Distiller(
                create_model("mlp", **STUDENT),
                teacher,
                [SoftTargetLoss(1, 20), HardTargetLoss(0.1)],
                cached_logits,
            ),
            train_flops,
        ),
        "distill, live teacher": (
            Distiller(
                create_model("mlp", **STUDENT),
                teacher,
                [SoftTargetLoss(1, 20), HardTargetLoss(0.1)],
            ),
            train_flops + 2 * teacher_macs,
        ),
    }
    rows = []
    for name, (objective, flops_per_sample) in modes.items():
        rate = time_training(objective, loader, args.batches)
        rows.append(
            {
                "mode": name,
                "samples_per_second": rate,
                "gflops": rate * flops_per_sample / 1e9,
                "fraction_of_peak": rate * flops_per_sample / peak,
            }
        )
    peak_after = matmul_peak(repeats=10)
    result = {
        "machine": {
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "command": f"python benchmarks/throughput.py --batches {args.batches} --batch-size {args.batch_size}"
        + (f" --threads {args.threads}" if args.threads else ""),
        "matmul_peak_gflops_before": peak / 1e9,
        "matmul_peak_gflops_after": peak_after / 1e9,
        "teacher_logit_cache_seconds": cache_seconds,
        "teacher_logit_cache_hit": cache_hit,
        "rows": rows,
    }
    lines = [
        "# Training throughput (784-800-800-10 student, 784-1200-1200-10 teacher, MNIST)",
        "",
        f"Command: `{result['command']}`; {result['machine']['platform']}, {result['machine']['threads']} threads, torch {result['machine']['torch']}.",
        f"fp32 matmul peak measured in the same run: {peak / 1e9:.1f} GFLOP/s before, {peak_after / 1e9:.1f} after the timings.",
        f"Teacher logits for 60,000 images: {cache_seconds:.1f} s "
        + (
            "(read back from the on-disk cache)."
            if cache_hit
            else "(computed once and written to the cache)."
        ),
        "",
        "| mode | samples/s | achieved GFLOP/s | fraction of matmul peak |",
        "|---|---|---|---|",
        *[
            f"| {r['mode']} | {r['samples_per_second']:.0f} | {r['gflops']:.1f} | {100 * r['fraction_of_peak']:.1f}% |"
            for r in rows
        ],
        "",
        "FLOPs count only the Linear layers' matmuls: training = 3 x forward of the student; a live teacher adds one teacher forward.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
