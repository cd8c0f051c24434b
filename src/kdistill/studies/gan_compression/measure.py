"""What the GAN Compression report measures besides the training runs: parameters, MACs and
CPU latency of the teacher and student generators, and image grids from the same noise."""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw
from torch import nn

from kdistill.files import atomic_write_bytes
from kdistill.models import count_parameters
from kdistill.models.gan import count_macs
from kdistill.tasks.generation import generate, generator_sizes

LATENCY_REPEATS = 30
GRID_COLUMNS = 6


def _latency_ms(model: nn.Module, batch: int, repeats: int) -> float:
    """Median wall time of one no-grad forward pass of ``batch`` examples on one CPU thread."""
    noise_size, num_classes = generator_sizes(model)
    noise = torch.randn(batch, noise_size, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(batch) % num_classes
    model.eval()
    times = []
    with torch.no_grad():
        model(noise, labels)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            model(noise, labels)
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def size_and_latency(
    teacher: nn.Module, student: nn.Module, repeats: int = LATENCY_REPEATS
) -> dict[str, Any]:
    """Parameters, MACs per image and median CPU latency (batch 1 and 64, one thread) of both
    generators, and the teacher/student ratios."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = {}
        for role, model in (("teacher", teacher), ("student", student)):
            noise = torch.zeros(1, generator_sizes(model)[0])
            labels = torch.zeros(1, dtype=torch.long)
            rows[role] = {
                "parameters": count_parameters(model),
                "macs": count_macs(model, noise, labels),
                "latency_ms_batch_1": round(_latency_ms(model, 1, repeats), 3),
                "latency_ms_batch_64": round(_latency_ms(model, 64, repeats), 3),
            }
    finally:
        torch.set_num_threads(threads)
    ratios = {
        key: round(rows["teacher"][key] / rows["student"][key], 2)
        for key in rows["teacher"]
        if rows["student"][key]
    }
    return {**rows, "teacher_over_student": ratios, "repeats": repeats, "threads": 1}


def l1_to_teacher(
    student: nn.Module, teacher: nn.Module, count: int = 1000, seed: int = 0
) -> float:
    """Mean absolute pixel difference between the student's and the teacher's images for the
    same noise and classes (``count`` of them, balanced; the reconstruction term's quantity,
    GAN Compression eq. 2, measured after training)."""
    cpu = torch.device("cpu")
    student_images, _ = generate(student, count, seed, 500, cpu)
    teacher_images, _ = generate(teacher, count, seed, 500, cpu)
    return round(float((student_images - teacher_images).abs().mean()), 5)


def save_grid(path: Path, models: dict[str, nn.Module], seed: int = 0) -> None:
    """One PNG: a panel per model (teacher first), each ``classes x GRID_COLUMNS`` images from
    the same noise and classes (row = class), named above the panel."""
    panels = []
    for name, model in models.items():
        classes = generator_sizes(model)[1]
        count = classes * GRID_COLUMNS
        images, labels = generate(model, count, seed, count, torch.device("cpu"))
        # generate() cycles the classes; order rows by class, columns by noise.
        order = torch.argsort(labels * count + torch.arange(count), stable=True)
        tiles = images[order].clamp(0, 1).mul(255).round().byte()[:, 0]
        height, width = tiles.shape[1:]
        panel = tiles.reshape(classes, GRID_COLUMNS, height, width)
        panel = panel.permute(0, 2, 1, 3).reshape(classes * height, GRID_COLUMNS * width)
        panels.append((name, Image.fromarray(panel.numpy(), mode="L")))
    gap, caption = 8, 14
    width = sum(picture.width for _, picture in panels) + gap * (len(panels) + 1)
    height = max(picture.height for _, picture in panels) + caption + 2 * gap
    canvas = Image.new("L", (width, height), color=255)
    draw = ImageDraw.Draw(canvas)
    left = gap
    for name, picture in panels:
        draw.text((left, gap // 2), name, fill=0)
        canvas.paste(picture, (left, gap + caption))
        left += picture.width + gap
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
