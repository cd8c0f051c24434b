"""The Markdown report of ``kdistill bench methods`` (``README.md`` beside ``results.json``):
the table, the terms and their weights, the comparison with RepDistiller's CIFAR-100 table and
what the table says, every figure read from the results."""

from __future__ import annotations

import json
from typing import Any

from kdistill.studies.methods.catalogue import label as _label
from kdistill.studies.methods.settings import DATASET_LABELS
from kdistill.studies.methods.stats import beyond_spread, delta, ratio_over_datasets

RESULTS_NAME = "results.json"
README_NAME = "README.md"
NOTES_NAME = "NOTES.md"
"""Hand-written notes beside the report: checks made outside this benchmark."""

# RepDistiller (Tian et al., "Contrastive Representation Distillation", ICLR 2020, Table 1):
# CIFAR-100 top-1, resnet32x4 teacher -> resnet8x4 student, each method with the
# cross-entropy; DKD from mdistiller (Zhao et al., CVPR 2022) on the same pair.
REFERENCE_CIFAR100 = {
    "student": 72.50,
    "kd": 73.33,
    "fitnet": 73.50,
    "at": 73.44,
    "sp": 72.94,
    "rkd": 71.90,
    "ab": 73.17,
    "nst": 73.30,
    "dkd": 76.32,
}


def _cell(summary: dict[str, Any], variant: str, baseline: float | None) -> str:
    entry = summary["variants"].get(variant)
    if entry is None:
        return "-"
    text = f"{entry['accuracy_mean']:.2f} ± {entry['accuracy_std']:.2f}"
    if baseline is not None and variant != "student":
        text += f" ({entry['accuracy_mean'] - baseline:+.2f})"
    return text


def _ratio(results: dict[str, Any], variant: str) -> str:
    ratio = ratio_over_datasets(results, variant)
    return f"{ratio:.2f}" if ratio is not None else "-"


def render_table(results: dict[str, Any]) -> str:
    """The Markdown table: one row per method, alone and with KD, per data set."""
    datasets = list(results["summary"])
    header = ["method"]
    for name in datasets:
        label = DATASET_LABELS.get(name, name)
        header += [f"{label} alone", f"{label} + KD"]
    header += ["epoch time × student (alone / + KD)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    baselines = {
        name: data["variants"].get("student", {}).get("accuracy_mean")
        for name, data in results["summary"].items()
    }
    teacher_cells = ["teacher (1 run)"]
    for name in datasets:
        accuracy = results["summary"][name]["teacher_accuracy"]
        teacher_cells += [f"{accuracy:.2f}" if accuracy is not None else "-", ""]
    lines.append("| " + " | ".join([*teacher_cells, ""]) + " |")
    rows: list[tuple[str, str, str | None]] = [
        ("student (hard labels)", "student", None),
        ("KD", "kd", None),
    ]
    rows += [(_label(key), key, f"kd+{key}") for key in results["settings"]["methods"]]
    for label, alone, with_kd in rows:
        cells = [label]
        for name in datasets:
            data = results["summary"][name]
            cells.append(_cell(data, alone, baselines[name]))
            cells.append(_cell(data, with_kd, baselines[name]) if with_kd else "")
        timing = _ratio(results, alone)
        if with_kd:
            timing += f" / {_ratio(results, with_kd)}"
        cells.append(timing)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ordering(results: dict[str, Any], dataset: str) -> str:
    variants = results["summary"][dataset]["variants"]
    shown = ["student", "kd", *results["settings"]["methods"]]
    ranked = sorted(
        (key for key in shown if key in variants),
        key=lambda key: -variants[key]["accuracy_mean"],
    )
    return " > ".join(_label(key) for key in ranked)


def render_comparison(results: dict[str, Any]) -> str:
    """Our differences from the student (methods alone) next to RepDistiller's CIFAR-100 ones."""
    reference = sorted(REFERENCE_CIFAR100, key=lambda key: -REFERENCE_CIFAR100[key])
    names = list(results["summary"])
    lines = [
        "| method | CIFAR-100 top-1 (reference) | reference Δ vs student | "
        + " | ".join(f"{DATASET_LABELS.get(name, name)} Δ (ours)" for name in names)
        + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for key in reference:
        keys = ["rkd_distance", "rkd_angle"] if key == "rkd" else [key]
        ours = []
        for name in names:
            variants = results["summary"][name]["variants"]
            parts = []
            for part in keys:
                difference = delta(variants, part)
                if difference is not None:
                    parts.append(
                        f"{difference:+.2f}" + (f" ({_label(part)})" if key == "rkd" else "")
                    )
            ours.append(", ".join(parts) if parts else "-")
        value = REFERENCE_CIFAR100[key]
        lines.append(
            f"| {_label(key)} | {value:.2f} | {value - REFERENCE_CIFAR100['student']:+.2f} | "
            + " | ".join(ours)
            + " |"
        )
    orderings = [
        "Reference order (CIFAR-100): "
        + " > ".join(_label(key) for key in reference)
        + " (RKD there is distance + angle together; DKD from mdistiller)."
    ]
    for name in names:
        orderings.append(
            f"Our order, {DATASET_LABELS.get(name, name)}, methods alone: "
            + _ordering(results, name)
            + "."
        )
    return "\n".join(lines) + "\n\n" + "\n\n".join(orderings)


def render_observations(results: dict[str, Any]) -> str:
    """What the table says, computed from it: who beats the student, by how much."""
    lines = []
    for name, data in results["summary"].items():
        variants = data["variants"]
        student = variants.get("student")
        if student is None:
            continue
        spread = student["accuracy_std"]
        alone = [key for key in ["kd", *results["settings"]["methods"]] if key in variants]
        combined = [
            f"kd+{key}" for key in results["settings"]["methods"] if f"kd+{key}" in variants
        ]
        better = [_label(key) for key in alone if beyond_spread(variants, key, 1.0)]
        worse = [_label(key) for key in alone if beyond_spread(variants, key, -1.0)]
        kd = variants.get("kd", {}).get("accuracy_mean")
        helps_kd = [
            _label(key.removeprefix("kd+"))
            for key in combined
            if kd is not None and variants[key]["accuracy_mean"] > kd
        ]
        teacher = data["teacher_accuracy"]
        lines.append(
            f"* **{DATASET_LABELS.get(name, name)}**: teacher "
            f"{'-' if teacher is None else f'{teacher:.2f}'}, student alone "
            f"{student['accuracy_mean']:.2f} ± {spread:.2f}. Above the student by more than a "
            f"standard deviation (alone): {', '.join(better) or 'none'}; below it by more than "
            f"one: {', '.join(worse) or 'none'}. Added to KD, these raise KD's mean: "
            f"{', '.join(helps_kd) or 'none'}."
        )
    return "\n".join(lines)


def why_different(results: dict[str, Any]) -> str:
    """Reasons our ordering may differ from the CIFAR-100 one, with the settings filled in."""
    settings = results["settings"]
    kd = settings["kd"]
    steps = settings["epochs"] * -(-settings["train_size"] // settings["batch_size"])
    gaps = ", ".join(
        f"{DATASET_LABELS.get(name, name)} {data['teacher_accuracy']:.2f} vs "
        f"{data['variants']['student']['accuracy_mean']:.2f}"
        for name, data in results["summary"].items()
        if data["teacher_accuracy"] is not None and "student" in data["variants"]
    )
    return f"""Why our ordering may differ from the CIFAR-100 one:

* **Budget.** {settings["epochs"]} epochs ({steps} steps) on {settings["train_size"]:,}
  images, against 240 epochs on 50,000 in RepDistiller. Our student is far from converged
  (teacher vs student alone: {gaps}), and every extra term competes with the labels for the
  few steps there are; on CIFAR-100 the students train to convergence and the same terms act
  as extra signal or regularisers. DKD runs without its warm-up. Whether KD's setting
  (T = {kd["temperature"]}, weight {kd["soft_target_weight"]}) or the plumbing decides KD's row
  was checked outside kdistill: see {NOTES_NAME}.
* **Hyper-parameters.** The weights are the papers' or RepDistiller's, chosen for ResNets on
  CIFAR-100 (or 1 where none exists; departures are given per method under "Terms and
  weights"), and nothing was tuned here. The first-epoch ratios above show which terms then
  outweigh the cross-entropy; learning rate, batch size and temperature are the same for
  every row.
* **Architectures.** {len(settings["student_channels"])}-block plain CNNs (widths
  {settings["teacher_channels"]} and {settings["student_channels"]}) against ResNets with
  three stages of residual blocks: AT matches every block, including the first, where a
  {settings["student_channels"][0]}-channel student map is pulled towards a
  {settings["teacher_channels"][0]}-channel teacher's; the relation methods relate a
  {settings["student_channels"][-1]}-dimensional embedding to a
  {settings["teacher_channels"][-1]}-dimensional one.
* **Scale.** 10 classes of 28x28 grey-scale images: soft targets over 10 classes carry far
  less per image than over 100, and on MNIST the better rows differ by tenths of a percent,
  the size of the seed-to-seed spread.
* **Seeds.** {settings["seeds"]} seeds give a standard deviation, not a significance test:
  differences within about one standard deviation are ties.
"""


def _rewritten(results: dict[str, Any]) -> str:
    wall = results["wall_seconds_this_invocation"]
    if wall >= 0.5 * results["run_seconds_total"]:
        return ""
    return (
        f" This file was written by a later invocation that read the finished runs back "
        f"({wall:.0f} s)."
    )


def _share_text(results: dict[str, Any], key: str) -> str:
    shares = [
        f"{DATASET_LABELS.get(name, name)} {entry['first_epoch_term_over_labels']:.2f}"
        for name, data in results["summary"].items()
        if (entry := data["variants"].get(key)) and entry["first_epoch_term_over_labels"]
    ]
    if not shares:
        return ""
    return " First epoch, alone: weighted term / cross-entropy = " + ", ".join(shares) + "."


def _teacher_cache_text(results: dict[str, Any]) -> str:
    """Which rows read cached teacher logits and which ran the teacher live, as the runs
    recorded it (``teacher_cache`` in each model file's metadata)."""
    cached: list[str] = []
    live: list[str] = []
    for key in ["kd", *results["settings"]["methods"]]:
        flags = {
            data["variants"][key].get("teacher_cache")
            for data in results["summary"].values()
            if key in data["variants"]
        }
        if flags == {True}:
            cached.append(_label(key))
        elif flags == {False}:
            live.append(_label(key))
    if not cached and not live:
        return "Whether a row read cached teacher logits was not recorded by these runs."
    return (
        f"Read cached teacher logits: {', '.join(cached) or 'none'}; ran the teacher live on "
        f"every batch, which is most of their cost: {', '.join(live) or 'none'}."
    )


def render_report(results: dict[str, Any]) -> str:
    """``README.md`` of the benchmark: command, machine, rule, table, comparison."""
    settings = results["settings"]
    machine = results["machine"]
    datasets = ", ".join(DATASET_LABELS.get(name, name) for name in results["summary"])
    method_lines = "\n".join(
        f"* **{entry['label']}**: `{json.dumps(entry['terms'])}` ({entry['source']})."
        + _share_text(results, key)
        for key, entry in results["methods"].items()
    )
    return f"""# Distillation methods, measured

Generated by `kdistill bench methods`; the per-run numbers are in `{RESULTS_NAME}`.

* Command: `{results["command"]}`
* Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["threads"]} thread(s) per run,
  torch {machine["torch"]}, Python {machine["python"]} ({machine["platform"]}).
* Wall time: {results["wall_seconds_first_to_last_run"] / 60:.1f} min from the start of the
  first run to the end of the last; the runs' own times add up to
  {results["run_seconds_total"] / 60:.1f} min.{_rewritten(results)}
* Data: {datasets}; a stratified {settings["train_size"]:,}-image training subset (the same
  for every run), tested on {"the full test set" if settings["test_size"] is None else f"{settings['test_size']:,} test images"}.
* Models: teacher `cnn` channels {settings["teacher_channels"]}, student `cnn` channels
  {settings["student_channels"]}; {settings["epochs"]} epochs for every run (teacher included),
  SGD lr {settings["lr"]} momentum 0.9 weight decay 5e-4, cosine schedule, batch
  {settings["batch_size"]}, no augmentation. Three conv blocks rather than two: with two, the
  7x7 map (receptive field about 10 pixels) is averaged straight into the classifier (the
  measurement that decided it is in {NOTES_NAME}).
* Rule: **test accuracy (%) after the last epoch**, mean ± sample std over **{settings["seeds"]}
  seeds** (seed = student initialisation and batch order; one teacher per data set). In
  brackets: difference from the student trained alone.
* "alone" = the method's term + cross-entropy with the labels (weight 1), no soft targets;
  "+ KD" = soft targets (T = {settings["kd"]["temperature"]}, weight
  {settings["kd"]["soft_target_weight"]}) + labels (weight {settings["kd"]["hard_target_weight"]})
  + the method's term. KD's row is KD itself.
* Epoch time: training seconds per epoch (evaluation excluded) over the same-seed student's,
  averaged over seeds and data sets. {_teacher_cache_text(results)} grad-AT also
  back-propagates through the teacher and twice through the student. Computing the cached
  logits once per data set is not in the ratio.

{render_table(results)}

## Terms and weights

{method_lines}

## Against RepDistiller's CIFAR-100 table

RepDistiller (Tian et al., ICLR 2020, Table 1), resnet32x4 -> resnet8x4, top-1 %, each method
with the cross-entropy; DKD from mdistiller (Zhao et al., CVPR 2022) on the same pair.

{render_comparison(results)}

What the table says (computed from it):

{render_observations(results)}

{why_different(results)}"""
