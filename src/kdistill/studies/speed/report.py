"""The speed report: README.md (tables and the verdict on each target) and results.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdistill.files import atomic_write_text
from kdistill.studies.speed.runner import CACHED, CACHED_FUSED, HAND, LIVE, PLAIN, ROWS

# The targets, as ratios measured side by side in one run.
TARGETS = {
    "cached teacher >= 2.0x the hand loop": (CACHED, "ratio_to_hand_loop", 2.0),
    "live teacher >= 1.25x the hand loop": (LIVE, "ratio_to_hand_loop", 1.25),
    "cached MLP pair >= 80% of same-shape matmul throughput": (
        CACHED,
        "fraction_of_same_shape_matmul",
        0.80,
    ),
}


def render(results: dict[str, Any]) -> str:
    machine = results["machine"]
    rows = results["rows"]
    matmul = results["matmul"]
    lines = [
        "# Training speed: kdistill against the loop users write",
        "",
        f"Command: `{results['command']}`. Machine: {machine['platform']} "
        f"({machine['processor']}), {machine['threads']} torch threads, torch {machine['torch']}.",
        f"One epoch over {results['train_examples']:,} MNIST training images per row and round, "
        f"batch {results['batch_size']}, 784-1200-1200-10 teacher, 784-800-800-10 student, "
        f"SGD with momentum; {results['rounds']} rounds, rows in turn (rotated each round); "
        "figures are medians over the rounds. The teacher is untrained (speed does not depend "
        "on its weights). kdistill's optimizer step is the multi-tensor one (bit-identical to "
        "torch's per-parameter loop) unless the row says fused (`train.optimizer.fused: true`, "
        "last-bit differences).",
        "",
        "| row | samples/s (median) | per round | x hand loop | GFLOP/s | of same-shape matmul |",
        "|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        figures = rows[row]
        per_round = ", ".join(f"{rate:,.0f}" for rate in figures["samples_per_second"])
        lines.append(
            f"| {row} | {figures['median']:,.0f} | {per_round} | "
            f"{figures['ratio_to_hand_loop']:.2f}x | {figures['gflops']:.1f} | "
            f"{100 * figures['fraction_of_same_shape_matmul']:.0f}% |"
        )
    lines += [
        "",
        f"Cached teacher / student alone: {results['cached_over_plain']:.2f}x "
        "(target >= 0.95x). Ratios per round (row / hand loop, same round): "
        + "; ".join(
            f"{row}: " + ", ".join(f"{r:.2f}" for r in rows[row]["ratio_to_hand_loop_per_round"])
            for row in (PLAIN, CACHED, LIVE, CACHED_FUSED)
        )
        + ".",
        "",
        "FLOPs per example: student training "
        f"{matmul['student_training_flops_per_example'] / 1e6:.2f} MFLOP (forward, weight "
        "gradients, input gradients of all layers but the first), teacher forward "
        f"{matmul['teacher_forward_flops_per_example'] / 1e6:.2f} MFLOP. The same products timed "
        f"alone at batch {results['batch_size']} in this run (before and after the rows, the "
        "better kept): "
        f"{matmul['same_shape_rate_cached'] / 1e9:.1f} GFLOP/s (student step) and "
        f"{matmul['same_shape_rate_live'] / 1e9:.1f} GFLOP/s (with the teacher's forward); a "
        f"2048 x 2048 product: {matmul['peak_square_2048'] / 1e9:.1f} GFLOP/s.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for name, (row, key, threshold) in TARGETS.items():
        value = rows[row][key]
        shown = f"{100 * value:.0f}%" if key.startswith("fraction") else f"{value:.2f}x"
        lines.append(f"| {name} | {shown} | {'yes' if value >= threshold else 'no'} |")
    plain_ok = results["cached_over_plain"] >= 0.95
    lines.append(
        f"| cached teacher >= 0.95x the student alone | {results['cached_over_plain']:.2f}x | "
        f"{'yes' if plain_ok else 'no'} |"
    )
    if "scaling" in results:
        scaling = results["scaling"]
        lines += [
            "",
            "## How epoch time grows",
            "",
            "| cached teacher, transfer set | examples | s/epoch |",
            "|---|---|---|",
            *[
                f"| x{r['factor']} | {r['examples']:,} | {r['seconds']:.1f} |"
                for r in scaling["transfer_set"]
            ],
            "",
            "| live teacher, hidden width | s/epoch |",
            "|---|---|",
            *[f"| {r['teacher_width']} | {r['seconds']:.1f} |" for r in scaling["teacher_width"]],
            "",
            "A cached teacher's cost does not depend on its width (its logits are read).",
        ]
    if "jitter_cache" in results:
        jitter = results["jitter_cache"]
        saved = jitter["beyond_live_seconds"] - jitter["beyond_cached_seconds"]
        lines += [
            "",
            "## Jittered transfer sets keep the cache",
            "",
            "The hinton-mnist beyond stage's setting: the CNN teacher "
            "(configs/hinton-mnist/cnn-teacher.yaml), the 800-800 student, jitter of +-2 px. "
            f"Timed on the first {jitter['timed_examples']:,} training images and scaled to "
            f"{jitter['scaled_to_examples']:,} (every cost here is linear in the count). "
            "The teacher's logits for all 25 shifts of every image "
            f"({jitter['cache_megabytes']:.0f} MB) took {jitter['build_seconds']:.0f} s to "
            f"compute once; a live-teacher epoch took {jitter['live_epoch_seconds']:.1f} s, a "
            f"cached one {jitter['cached_epoch_seconds']:.1f} s. Over the full profile's "
            f"{jitter['beyond_epochs']} epochs: {jitter['beyond_live_seconds'] / 60:.1f} min "
            f"live, {jitter['beyond_cached_seconds'] / 60:.1f} min cached (build included): "
            f"{saved / 60:.1f} min saved.",
        ]
    if "memory_layout" in results:
        layout = results["memory_layout"]
        per_round = ", ".join(f"{ratio:.2f}" for ratio in layout["ratio_per_round"])
        lines += [
            "",
            "## Convolutions: channels-last memory layout",
            "",
            "The hinton-mnist beyond stage's CNN teacher trained through `engine.fit` (jitter "
            f"+-2 px, batch {layout['batch_size']}, the first {layout['examples']:,} training "
            "images), its weights in the default layout and with `train.channels_last: true`, "
            "in turns:",
            "",
            "| layout | samples/s (median) | per round |",
            "|---|---|---|",
            *[
                f"| {name} | {layout['median'][name]:,.0f} | "
                + ", ".join(f"{rate:,.0f}" for rate in rates)
                + " |"
                for name, rates in layout["samples_per_second"].items()
            ],
            "",
            f"channels-last / contiguous: {layout['ratio_median']:.2f}x (per round: "
            f"{per_round}). The kdistill configs of convolutional teachers set it "
            "(configs/hinton-mnist/cnn-teacher.yaml, configs/dense/*-teacher.yaml).",
        ]
    if "profile" in results:
        lines += [
            "",
            "## Where a cached-teacher epoch spends its time",
            "",
            "`torch.profiler` over one short epoch through `engine.fit` (self CPU time, top "
            "operators):",
            "",
            "| operator | calls | self ms | share |",
            "|---|---|---|---|",
            *[
                f"| `{r['operator']}` | {r['calls']} | {r['self_ms']:.1f} | "
                f"{100 * r['share']:.1f}% |"
                for r in results["profile"]
            ],
        ]
    return "\n".join(lines) + "\n"


def write_speed_report(results: dict[str, Any], output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / "results.json", json.dumps(results, indent=2) + "\n")
    readme = output_dir / "README.md"
    atomic_write_text(readme, render(results))
    return readme


__all__ = ["HAND", "TARGETS", "render", "write_speed_report"]
