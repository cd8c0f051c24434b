"""The dense benchmark's report (``README.md`` beside ``results.json``) and its pictures."""

from __future__ import annotations

import io
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from kdistill.files import atomic_write_bytes
from kdistill.studies.dense.plan import SEG_LABELS, SEG_METHODS

PICTURE_COLUMNS = {
    "teacher": "teacher",
    "student": "student alone",
    "all": "student + both terms",
    "full": "student + all three",
}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(
    cells: dict[str, list[dict[str, Any]]],
    methods: Sequence[str] = SEG_METHODS,
    metric: str = "miou",
    also: Sequence[str] = ("pixel_accuracy",),
) -> dict[str, dict[str, Any]]:
    """Method -> ``metric`` (and each of ``also``) in % as mean and std, and the paired gain in
    ``metric`` over the student alone (``cells["student"]``) seed by seed."""
    alone = [100 * run[metric] for run in cells["student"]]
    rows: dict[str, dict[str, Any]] = {}
    for method in methods:
        runs = cells.get(method, [])
        if not runs:
            continue
        values = [100 * run[metric] for run in runs]
        row: dict[str, Any] = {
            metric: _mean_std(values),
            **{key: _mean_std([100 * run[key] for run in runs]) for key in also},
            "seconds": statistics.mean(run["seconds"] for run in runs),
        }
        if method != "student":
            gains = [a - b for a, b in zip(values, alone, strict=False)]
            row["gain"] = _mean_std(gains)
            row["seeds_better"] = sum(gain > 0 for gain in gains)
            row["seeds"] = len(gains)
        rows[method] = row
    return rows


def verdicts(rows: dict[str, dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """The report's two lines: which cells helped (a gain on every seed) and which did not."""
    judged = {method: verdict(row) for method, row in rows.items() if "gain" in row}
    helped = [labels[method] for method, said in judged.items() if said == "helped"]
    not_helped = [labels[method] for method, said in judged.items() if said == "did not help"]
    return [
        f"- Helped (a gain on every seed): {', '.join(helped) or 'none'}.",
        f"- Did not help (mean gain ≤ 0): {', '.join(not_helped) or 'none'}.",
    ]


def _foreground(per_class: list[float | None]) -> float:
    known = [value for value in per_class[1:] if value is not None]
    return 100 * statistics.mean(known) if known else 0.0


def _foreground_line(report: dict[str, Any], rows: dict[str, Any]) -> str:
    """How much of the objects (not the background) each model gets right."""
    parts = [f"teacher {_foreground(report['teacher']['per_class_iou']):.1f}"]
    for method in rows:
        runs = report["cells"][method]
        mean = statistics.mean(_foreground(run["per_class_iou"]) for run in runs)
        parts.append(f"{SEG_LABELS[method]} {mean:.1f}")
    return (
        "Mean IoU (%) over the object classes alone (background left out): "
        + "; ".join(parts)
        + "."
    )


def verdict(row: dict[str, Any]) -> str:
    """Helped: a positive paired gain on every seed (at least two); did not help: a mean gain
    of zero or less; otherwise unclear."""
    mean, _ = row["gain"]
    if mean <= 0:
        return "did not help"
    if row["seeds"] >= 2 and row["seeds_better"] == row["seeds"]:
        return "helped"
    return "unclear (one seed)" if row["seeds"] < 2 else "unclear (mixed signs across seeds)"


def pm(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} ± {pair[1]:.2f}"


def profile_row(name: str, profile: dict[str, Any]) -> str:
    return (
        f"| {name} | {profile['parameters']:,} | {profile['macs'] / 1e6:.1f} M | "
        f"{profile['latency_batch_1_ms']:.2f} | {profile['latency_batch_100_ms']:.1f} |"
    )


def _detection_links(names: list[str]) -> list[str]:
    """A line linking the detection reports written beside this one (``detection.md`` for the
    shipped student, ``detection-width-N.md`` for one N times wider)."""
    if not names:
        return []
    links = [
        f"[{name}]({name})"
        + (f" (a student {name[len('detection-width-') : -3]}x wider)" if "width" in name else "")
        for name in sorted(names, key=lambda name: (name != "detection.md", name))
    ]
    return [
        "The detection half (Chen et al. 2017; `--tasks detection`) is in "
        f"{', '.join(links)} beside this file.",
        "",
    ]


def render_report(report: dict[str, Any]) -> str:
    rows = summarise(report["cells"])
    teacher = report["teacher"]
    data = report["data"]
    lines = [
        "# Structured distillation for semantic segmentation on glyph canvases",
        "",
        "Written by `kdistill bench dense` (`src/kdistill/studies/dense/`); every figure below "
        "was measured by the run that wrote this file.",
        "",
        f"- Command: `{report['command']}`",
        f"- Machine: {report['machine']}",
        f"- Wall time of the invocation that wrote this: {report['wall_seconds_this_invocation']:.0f} s "
        "(finished units are read back, not retrained)",
        f"- Data: `{data['name']}`, {data['train']} training and {data['test']} test canvases "
        f"{data['canvas']}, {data['classes']} classes (background, MNIST digits 0-9, "
        "Fashion-MNIST items 0-9); training canvases only from training glyphs, test only from test glyphs",
        f"- Rule: {report['rule']}",
        "- Terms (Liu et al., CVPR 2019): l_mc = per-pixel cross-entropy with the masks "
        "(`hard_targets`, weight 1), l_pi = per-pixel KL from the teacher (`pixel_kl`, weight 10, "
        "T = 1), l_pa = squared difference of cosine affinity matrices between 2 x 2 nodes of "
        "the decoders' stride-4 maps (`pairwise`, weight 1), l_ho = the holistic term "
        "(`distill.holistic`, weight 0.1): a conditional discriminator (`seg-discriminator`: "
        "five convolutions, two self-attention blocks) scores (soft segmentation map, image), "
        "the teacher's map real and the student's fake, Wasserstein loss with gradient penalty "
        "10 (WGAN-GP), trained in the same step as the student, in its own group of the "
        "one optimizer: Adam lr 1e-4, betas (0.5, 0.9), WGAN-GP's critic settings "
        "(`distill.holistic.discriminator_optimizer`); the short-budget report's holistic "
        "cells trained the critic on the student's lr 0.003 and collapsed."
        + (
            ""
            if "holistic" in rows
            else " No holistic cell is in this table: rerun with `--seg-methods` including "
            "`holistic` and `full` to add them."
        ),
        "",
        "## Models",
        "",
        "| model | parameters | MACs / canvas | CPU latency batch 1 (ms) | batch 100 (ms) |",
        "|---|---:|---:|---:|---:|",
        profile_row("teacher `segnet` 16-32-64-128, decoder 64", teacher["profile"]),
        profile_row("student `segnet` 4-8-16-32, decoder 16", report["student_profile"]),
        "",
        f"Latency: median of 20 no-grad calls, {teacher['profile']['threads']} thread, on the "
        "machine above while other jobs ran.",
        "",
        "## Test mIoU (%)",
        "",
        f"Teacher: mIoU {100 * teacher['miou']:.2f}, pixel accuracy "
        f"{100 * teacher['pixel_accuracy']:.2f} ({teacher['seconds']:.0f} s of training).",
        "",
        "| student | mIoU | pixel accuracy | gain over alone (paired) | seeds better | s / run | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for method, row in rows.items():
        gain = pm(row["gain"]) if "gain" in row else "—"
        better = f"{row['seeds_better']}/{row['seeds']}" if "gain" in row else "—"
        judged = verdict(row) if "gain" in row else "—"
        lines.append(
            f"| {SEG_LABELS[method]} | {pm(row['miou'])} | {pm(row['pixel_accuracy'])} | "
            f"{gain} | {better} | {row['seconds']:.0f} | {judged} |"
        )
    lines += [
        "",
        "`s / run` is each unit's wall time on the shared machine, which other jobs (and "
        "other units of this benchmark) used at the same time: compare it within a table only.",
        "",
        _foreground_line(report, rows),
        "",
        "## What helped here",
        "",
        *verdicts(rows, SEG_LABELS),
        "- Verdicts are for these tiny runs (few epochs, a few thousand 64 x 64 canvases, "
        f"{len(report['seeds'])} seed(s)); they say nothing about the paper's Cityscapes setting.",
        "",
        *_detection_links(report.get("detection_reports", [])),
        "## Pictures",
        "",
        "![test canvases: input, ground truth, teacher, student alone, distilled student]"
        "(segmentation.png)",
        "",
        "The first eight test canvases: input, ground truth, then the teacher's, the student "
        "alone's, the student with both pixel-wise and pair-wise terms' and (when trained) the "
        "student with all three terms' predictions (seed 0); colours are classes, black is "
        "background.",
        "",
        "## Per-class IoU (%), mean over seeds",
        "",
        "| class | " + " | ".join(["teacher", *(SEG_LABELS[m] for m in rows)]) + " |",
        "|---|" + "---:|" * (1 + len(rows)),
    ]
    names = ["background", *(f"digit {d}" for d in range(10)), *(f"item {i}" for i in range(10))]
    for index, name in enumerate(names[: data["classes"]]):
        values = [teacher["per_class_iou"][index]]
        for method in rows:
            per_seed = [run["per_class_iou"][index] for run in report["cells"][method]]
            known = [v for v in per_seed if v is not None]
            values.append(statistics.mean(known) if known else None)
        shown = ["—" if v is None else f"{100 * v:.1f}" for v in values]
        lines.append(f"| {name} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def draw_predictions(
    path: Path, images: torch.Tensor, masks: torch.Tensor, predictions: dict[str, torch.Tensor]
) -> None:
    """One row per canvas: input, ground truth, then each model's predicted classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    # Background black, then the 20 glyph classes in tab20's colours.
    colours = ListedColormap(
        torch.cat(
            [torch.tensor([[0.0, 0.0, 0.0, 1.0]]), torch.tensor(plt.get_cmap("tab20")(range(20)))]
        ).numpy()
    )
    columns = [("input", None), ("ground truth", masks)] + [
        (PICTURE_COLUMNS.get(name, name), values) for name, values in predictions.items()
    ]
    rows = len(images)
    figure, axes = plt.subplots(rows, len(columns), figsize=(1.6 * len(columns), 1.6 * rows))
    for row in range(rows):
        for column, (title, values) in enumerate(columns):
            axis = axes[row, column]
            if values is None:
                axis.imshow(images[row, 0].numpy(), cmap="gray", vmin=0, vmax=255)
            else:
                axis.imshow(
                    values[row].numpy(), cmap=colours, vmin=0, vmax=20, interpolation="nearest"
                )
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
