"""``kdistill bench deploy``: why distillation exists, in one table. Parameters, bytes on disk,
test errors and CPU latency (batch 1 and 256; median and p90 of repeated runs) of the
teacher, the teachers' ensemble and the student, in PyTorch and in onnxruntime."""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from kdistill.data import Split
from kdistill.export.deployable import Deployable, load_deployable, model_file_of
from kdistill.export.formats import export_model, onnx_session, predict_stored
from kdistill.files import atomic_write_text

__all__ = ["bench_deploy", "latency_ms", "render_table", "write_deploy_report"]


def latency_ms(run: Callable[[], Any], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median and 90th percentile of ``repeats`` timed calls of ``run``, in milliseconds."""
    for _ in range(warmup):
        run()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(1000 * (time.perf_counter() - started))
    timings.sort()
    return {
        "median": statistics.median(timings),
        "p90": timings[min(len(timings) - 1, int(0.9 * len(timings)))],
    }


def _errors(models: Sequence[Deployable], test: Split) -> int:
    # The ensemble's arithmetic mean at T = 1 (one member: its own softmax).
    probabilities = torch.stack(
        [predict_stored(model, test.inputs).softmax(-1) for model in models]
    ).mean(0)
    return int((probabilities.argmax(1) != test.labels).sum())


def _row(
    name: str, files: Sequence[Path], models: Sequence[Deployable], test: Split, folder: Path,
    repeats: int,
) -> dict[str, Any]:  # fmt: skip
    sessions = []
    onnx_bytes = 0
    for index, model in enumerate(models):
        path = export_model(model, test.inputs[:2].float(), folder / f"{name}-{index}.onnx")
        onnx_bytes += path.stat().st_size
        sessions.append(onnx_session(path))
    row: dict[str, Any] = {
        "name": name,
        "members": len(models),
        "parameters": sum(p.numel() for m in models for p in m.model.parameters()),
        "safetensors_bytes": sum(path.stat().st_size for path in files),
        "onnx_bytes": onnx_bytes,
        "test_errors": _errors(models, test),
        "test_examples": len(test),
    }
    for batch_size in (1, 256):
        stored = test.inputs[:batch_size].float()
        count = repeats if batch_size == 1 else max(5, repeats // 10)
        row[f"pytorch_batch_{batch_size}_ms"] = latency_ms(
            partial(_run_torch, models, stored), count
        )
        row[f"onnxruntime_batch_{batch_size}_ms"] = latency_ms(
            partial(_run_onnx, sessions, stored.numpy()), count
        )
    return row


def _run_torch(models: Sequence[Deployable], stored: torch.Tensor) -> None:
    with torch.inference_mode():
        for model in models:
            model(stored)


def _run_onnx(sessions: Sequence[Any], array: Any) -> None:
    for session in sessions:
        session.run(None, {"inputs": array})


def bench_deploy(
    teachers: Sequence[str | Path],
    student: str | Path,
    test: Split,
    *,
    threads: int = 1,
    repeats: int = 200,
) -> dict[str, Any]:
    """Measure teacher (the first), ensemble (all teachers, if several) and student."""
    torch.set_num_threads(threads)
    teacher_files = [model_file_of(path) for path in teachers]
    student_file = model_file_of(student)
    teacher_models = [load_deployable(path)[0] for path in teacher_files]
    student_model = load_deployable(student_file)[0]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        rows.append(_row("teacher", teacher_files[:1], teacher_models[:1], test, folder, repeats))
        if len(teacher_models) > 1:
            rows.append(_row("ensemble", teacher_files, teacher_models, test, folder, repeats))
        rows.append(_row("student", [student_file], [student_model], test, folder, repeats))
    import onnxruntime

    return {
        "rows": rows,
        "files": {
            "teachers": [str(p) for p in teacher_files],
            "student": str(student_file),
        },
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "threads": threads,
            "repeats_batch_1": repeats,
        },
    }


def render_table(results: dict[str, Any]) -> str:
    lines = [
        "| model | members | parameters | safetensors | test errors | PyTorch b=1 (median / p90) | onnxruntime b=1 | PyTorch b=256 | onnxruntime b=256 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:

        def cell(key: str, row: dict[str, Any] = row) -> str:
            value = row[key]
            return f"{value['median']:.3f} / {value['p90']:.3f} ms"

        lines.append(
            f"| {row['name']} | {row['members']} | {row['parameters']:,} | "
            f"{row['safetensors_bytes'] / 1e6:.2f} MB | {row['test_errors']} / {row['test_examples']} | "
            f"{cell('pytorch_batch_1_ms')} | {cell('onnxruntime_batch_1_ms')} | "
            f"{cell('pytorch_batch_256_ms')} | {cell('onnxruntime_batch_256_ms')} |"
        )
    return "\n".join(lines)


def write_deploy_report(results: dict[str, Any], output_dir: str | Path, command: str) -> Path:
    output = Path(output_dir)
    machine = results["machine"]
    text = (
        "# Deployment: teacher, ensemble and student side by side\n\n"
        f"Generated by `{command}`.\n\n"
        f"Machine: {machine['processor']}, Python {machine['python']}, torch {machine['torch']}, "
        f"onnxruntime {machine['onnxruntime']}, {machine['threads']} thread(s); latency = median "
        f"and 90th percentile of {machine['repeats_batch_1']} runs at batch 1 "
        f"({max(5, machine['repeats_batch_1'] // 10)} at batch 256), after 3 warm-up runs; "
        "inputs are stored test examples, the encoding runs inside each model. An ensemble runs "
        "its members one after another.\n\n" + render_table(results) + "\n"
    )
    atomic_write_text(output / "README.md", text)
    atomic_write_text(output / "results.json", json.dumps(results, indent=2) + "\n")
    return output / "README.md"
