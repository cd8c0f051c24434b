"""The GAN Compression report (``README.md`` beside ``results.json``): per data set the
teacher and the four student rows (Frechet distance, accuracy of generated samples,
precision, recall; mean ± std over seeds, paired differences from the student trained from
scratch), sizes, MACs and CPU latency, the image grids, and whether the paper's claim (the
distilled student matches the teacher better than one trained from scratch) held here."""

from __future__ import annotations

import statistics
from typing import Any

from kdistill.studies.gan_compression.plan import STUDENT_LABELS

DATASET_LABELS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
METRICS = ("frechet_distance", "accuracy", "precision", "recall", "l1_to_teacher")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(cells: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Data set -> student row -> each metric's (mean, std), and the paired difference of the
    Frechet distance from the scratch row (with the count of seeds where it is lower)."""
    summary: dict[str, Any] = {}
    for data_name, rows in cells.items():
        summary[data_name] = {}
        scratch = [run["frechet_distance"] for run in rows.get("scratch", [])]
        for student, runs in rows.items():
            if not runs:
                continue
            row: dict[str, Any] = {
                metric: _mean_std([float(run[metric]) for run in runs]) for metric in METRICS
            }
            row["seconds"] = statistics.mean(run["seconds"] for run in runs)
            row["seeds"] = len(runs)
            if student != "scratch" and len(scratch) == len(runs):
                deltas = [
                    run["frechet_distance"] - base for run, base in zip(runs, scratch, strict=True)
                ]
                row["delta_frechet_distance"] = _mean_std(deltas)
                row["lower_frechet_distance"] = sum(delta < 0 for delta in deltas)
            summary[data_name][student] = row
    return summary


def verdicts(summary: dict[str, Any]) -> list[str]:
    """One line per data set: did the full objective beat the scratch student, and did each
    term alone?"""
    lines = []
    for data_name, rows in summary.items():
        if "scratch" not in rows:
            continue
        base = rows["scratch"]["frechet_distance"]
        parts = []
        for student in ("reconstruction", "features", "all"):
            row = rows.get(student)
            if row is None or "delta_frechet_distance" not in row:
                continue
            mean, std = row["delta_frechet_distance"]
            if row["seeds"] < 2:
                spread = "one seed: no spread to compare with"
            else:
                spread = ("beyond" if abs(mean) > std else "within") + " the seed spread"
            parts.append(
                f"{STUDENT_LABELS[student].removeprefix('Student ')}: FD {mean:+.3f} ± {std:.3f} "
                f"({row['lower_frechet_distance']}/{row['seeds']} seeds lower, {spread})"
            )
        full = rows.get("all", {})
        mean, std = full.get("delta_frechet_distance", (0.0, 0.0))
        every_seed = full.get("lower_frechet_distance", 0) == full.get("seeds", -1)
        if mean < 0 and every_seed and (full.get("seeds", 0) < 2 or -mean > std):
            outcome = "**lowered**"
        elif mean < 0:
            outcome = "**lowered on average only** (not in every seed, or within the seed spread)"
        else:
            outcome = "**did not lower**"
        lines.append(
            f"- {DATASET_LABELS.get(data_name, data_name)}: the full objective {outcome} the "
            f"student's Frechet distance (scratch {base[0]:.3f} ± {base[1]:.3f}); "
            + "; ".join(parts)
            + "."
        )
    return lines


def _against_teacher(summary: dict[str, Any], teachers: dict[str, Any]) -> str:
    """The paper's other claim: the compressed generator about as good as the teacher."""
    lines = []
    for data_name, rows in summary.items():
        best = min(rows, key=lambda student: rows[student]["frechet_distance"][0])
        fd = rows[best]["frechet_distance"]
        lines.append(
            f"- {DATASET_LABELS.get(data_name, data_name)}: teacher FD "
            f"{teachers[data_name]['frechet_distance']:.3f} (one run); the best student row, "
            f"{STUDENT_LABELS[best][0].lower()}{STUDENT_LABELS[best][1:]}, "
            f"{fd[0]:.3f} ± {fd[1]:.3f}."
        )
        recall = teachers[data_name]["recall"]
        if recall < 0.05:
            lines.append(
                f"  The teacher's recall is {recall:.3f}: its samples cover almost none of the "
                "real images' neighbourhoods, i.e. little of the variety within a class (in the "
                "grid, a class's columns look alike): a partly mode-collapsed teacher, and what "
                "the distilled students are taught to copy."
            )
    return "Against the teacher:\n\n" + "\n".join(lines) + "\n"


def _speed_note(sizes: dict[str, Any]) -> str:
    notes = []
    for data_name, size in sizes.items():
        ratio = size["teacher_over_student"]
        notes.append(
            f"{DATASET_LABELS.get(data_name, data_name)}: {ratio['macs']}x fewer MACs gave "
            f"{ratio['latency_ms_batch_64']}x lower latency at batch 64 and "
            f"{ratio['latency_ms_batch_1']}x at batch 1"
        )
    return (
        "; ".join(notes)
        + ". At these sizes the work MACs do not count (batch norm, activations, memory "
        "traffic, per-call overhead) is a large share of the time, most of all at batch 1.\n"
    )


def _pm(pair: tuple[float, float], digits: int = 3) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def _size_table(sizes: dict[str, Any]) -> str:
    lines = [
        "| Data set | Generator | Parameters | MACs / image | CPU latency, batch 1 (ms) | "
        "CPU latency, batch 64 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for data_name, size in sizes.items():
        for role in ("teacher", "student"):
            row = size[role]
            lines.append(
                f"| {DATASET_LABELS.get(data_name, data_name)} | {role} | {row['parameters']:,} | "
                f"{row['macs']:,} | {row['latency_ms_batch_1']:.3f} | "
                f"{row['latency_ms_batch_64']:.3f} |"
            )
        ratio = size["teacher_over_student"]
        lines.append(
            f"| | teacher / student | {ratio['parameters']}x | {ratio['macs']}x | "
            f"{ratio['latency_ms_batch_1']}x | {ratio['latency_ms_batch_64']}x |"
        )
    return "\n".join(lines)


def _setup(recipe: dict[str, Any]) -> str:
    teacher, student = recipe["teacher_channels"], recipe["student_channels"]
    features = ", ".join(
        f"`{path}` (weight {weight:g})" for path, weight in recipe["feature_weights"].items()
    )
    return (
        "GAN Compression (Li et al., CVPR 2020, eq. 4) trains a smaller generator with its "
        "adversarial loss plus an L1 reconstruction loss to the teacher's output for the same "
        "input (here the same noise and class) plus the MSE between the teacher's intermediate "
        "features and the student's mapped to the teacher's channels by learnable 1x1 "
        "convolutions. Here: a class-conditional DCGAN-style generator (teacher channels "
        f"{4 * teacher}-{2 * teacher}-{teacher}, student {4 * student}-{2 * student}-{student}), "
        f"a projection discriminator ({recipe['discriminator_channels']}-"
        f"{2 * recipe['discriminator_channels']} channels; the distilled students start theirs "
        f"from the teacher's, as in the paper), the {recipe['loss']} GAN loss, "
        f"{recipe['optimizer']}, batch {recipe['batch_size']}, reconstruction weight "
        f"{recipe['reconstruction_weight']:g}, feature distillation on {features}. Both players "
        "take one simultaneous step per batch on the one training engine (the discriminator's "
        "loss sees the images detached, the generator's sees the discriminator frozen; see "
        "`kdistill.methods.gan`).\n"
    )


def render_report(report: dict[str, Any]) -> str:
    summary = report["summary"]
    parts = [
        "# GAN Compression: a 1/4-width conditional generator distilled from its teacher\n",
        _setup(report["recipe"]),
        "**The metrics are not Inception-FID.** They are computed in the feature space of a "
        f"kdistill classifier ({report['recipe']['classifier']}, global average pool; features: "
        "the pooled map, the input of its linear head) trained on the whole training set of each data set: "
        "Frechet distance between the 10,000 test images and "
        f"{report['recipe']['eval_samples']:,} generated images (balanced "
        "classes, fixed noise), accuracy of generated samples (the classifier's prediction vs "
        "the class asked for), and precision/recall (Kynkaanniemi et al. 2019, k = 3) against "
        "as many test images.\n",
        f"**Command:** `{report['command']}`  \n**Machine:** {report['machine']}  \n"
        f"**Wall time of this invocation:** {report['wall_seconds_this_invocation']:.0f} s "
        "(stages already done are read back); load average (1/5/15 min) "
        f"{report['load_average_1_5_15_min']['start']} at the start, "
        f"{report['load_average_1_5_15_min']['end']} at the end  \n"
        f"**Rule:** {report['rule']}.  \n"
        f"**Data:** GANs on a stratified {report['train_size']:,}-image training subset (subset "
        f"seed {report['subset_seed']}), {report['epochs']} epochs; seeds {report['seeds']}.\n",
        "Classifiers (feature space): "
        + ", ".join(
            f"{DATASET_LABELS.get(name, name)} {100 * row['test_errors'] / row['test_total']:.2f}% "
            "test error"
            for name, row in report["classifiers"].items()
        )
        + ".\n",
        "## Whether distillation helped the student\n",
        "\n".join(verdicts(summary)) + "\n",
        _against_teacher(summary, report["teachers"]),
        "## Size and speed\n",
        _size_table(report["sizes"]) + "\n",
        _speed_note(report["sizes"]),
        f"MACs counted by PyTorch's FLOP counter (convolutions and matrix products; 2 FLOPs = 1 "
        f"MAC); latency: median of {next(iter(report['sizes'].values()))['repeats']} no-grad "
        "forward passes on one CPU thread of the shared machine.\n",
    ]
    for data_name, rows in summary.items():
        label = DATASET_LABELS.get(data_name, data_name)
        teacher = report["teachers"][data_name]
        parts.append(f"## {label}\n")
        lines = [
            "| Generator | Frechet distance (classifier features) | Accuracy of generated % | "
            "Precision | Recall | L1 to the teacher's image | Δ FD vs scratch | s / run |",
            "|---|---|---|---|---|---|---|---|",
            f"| Teacher (seed 0) | {teacher['frechet_distance']:.3f} | "
            f"{100 * teacher['accuracy']:.2f} | {teacher['precision']:.3f} | "
            f"{teacher['recall']:.3f} | 0 | — | {teacher['seconds']:.0f} |",
        ]
        for student, row in rows.items():
            delta = (
                f"{_pm(row['delta_frechet_distance'])} ({row['lower_frechet_distance']}/"
                f"{row['seeds']} lower)"
                if "delta_frechet_distance" in row
                else "—"
            )
            accuracy = (100 * row["accuracy"][0], 100 * row["accuracy"][1])
            lines.append(
                f"| {STUDENT_LABELS[student]} | {_pm(row['frechet_distance'])} | "
                f"{_pm(accuracy, 2)} | {_pm(row['precision'])} | {_pm(row['recall'])} | "
                f"{_pm(row['l1_to_teacher'], 4)} | {delta} | "
                f"{row['seconds']:.0f} |"
            )
        parts.append("\n".join(lines) + "\n")
        parts.append(
            f"![teacher and students from the same noise, {label}]({report['grids'][data_name]})\n\n"
            "Teacher and students (seed 0) from the same noise: one row per class, one column "
            "per noise vector.\n"
        )
    parts.append(
        "L1 to the teacher's image: the mean absolute pixel difference (pixels in [0, 1]) "
        "between the student's and the teacher's images for the same 1,000 noise vectors and "
        "classes. Deltas are paired by seed (the same seed's scratch student); “k/n lower” counts the "
        "seeds where the row's Frechet distance is below the scratch student's. Seconds are "
        "the engine's per-epoch training and evaluation times summed, on the shared machine. Per-seed figures are in `results.json`.\n"
    )
    return "\n".join(parts)
