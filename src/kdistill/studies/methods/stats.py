"""Statistics of the methods table: accuracy mean and sample standard deviation over seeds,
epoch-time ratios against the same-seed student, first-epoch term shares."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def term_to_labels(losses: dict[str, float] | None) -> float | None:
    """First-epoch weighted method term(s) over the cross-entropy with the labels."""
    if not losses or not losses.get("hard_targets"):
        return None
    extra = sum(v for k, v in losses.items() if k not in ("hard_targets", "soft_targets"))
    return extra / losses["hard_targets"]


def _teacher_cache(cells: list[dict[str, Any]]) -> bool | None:
    """Whether the runs read cached teacher logits (None: not recorded, or no teacher)."""
    flags = {cell.get("teacher_cache") for cell in cells}
    return flags.pop() if len(flags) == 1 else None


def summarise(records: list[dict[str, Any]], teachers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per data set and variant: accuracy mean/std over seeds and the epoch-time ratio.

    The ratio is, per seed, the mean epoch time of the run over the mean epoch time of the
    ``student`` run with that seed (same data set, same benchmark machine), then averaged.
    """
    summary: dict[str, Any] = {}
    for dataset in dict.fromkeys(record["dataset"] for record in records):
        rows = [record for record in records if record["dataset"] == dataset]
        baseline = {
            record["seed"]: statistics.fmean(record["epoch_seconds"])
            for record in rows
            if record["variant"] == "student"
        }
        variants: dict[str, Any] = {}
        for variant in dict.fromkeys(record["variant"] for record in rows):
            cells = sorted(
                (record for record in rows if record["variant"] == variant),
                key=lambda record: record["seed"],
            )
            accuracies = [100 * record["test_accuracy"] for record in cells]
            ratios = [
                statistics.fmean(record["epoch_seconds"]) / baseline[record["seed"]]
                for record in cells
                if record["seed"] in baseline
            ]
            mean, std = mean_std(accuracies)
            shares = [
                share
                for share in (term_to_labels(record.get("first_epoch_losses")) for record in cells)
                if share is not None
            ]
            variants[variant] = {
                "first_epoch_term_over_labels": round(statistics.fmean(shares), 2)
                if shares and variant not in ("student", "kd")
                else None,
                "accuracy_mean": round(mean, 3),
                "accuracy_std": round(std, 3),
                "accuracies": [round(value, 2) for value in accuracies],
                "seeds": [record["seed"] for record in cells],
                "epoch_time_ratio": round(statistics.fmean(ratios), 2) if ratios else None,
                "epoch_seconds_mean": round(
                    statistics.fmean(
                        [statistics.fmean(record["epoch_seconds"]) for record in cells]
                    ),
                    2,
                ),
                "teacher_cache": _teacher_cache(cells),
            }
        teacher = teachers.get(dataset)
        summary[dataset] = {
            "teacher_accuracy": None
            if teacher is None
            else round(100 * teacher["test_accuracy"], 2),
            "variants": variants,
        }
    return summary


def delta(variants: dict[str, Any], key: str) -> float | None:
    """Mean accuracy of ``key`` minus the student's (percentage points)."""
    base = variants.get("student", {}).get("accuracy_mean")
    if key not in variants or base is None:
        return None
    return float(variants[key]["accuracy_mean"] - base)


def beyond_spread(variants: dict[str, Any], key: str, sign: float) -> bool:
    """Whether ``key`` is above (``sign`` 1) or below (-1) the student by more than the larger
    of the two standard deviations."""
    difference = delta(variants, key) or 0.0
    spread = max(variants["student"]["accuracy_std"], variants[key]["accuracy_std"])
    return sign * difference > spread


def ratio_over_datasets(results: dict[str, Any], variant: str) -> float | None:
    """The epoch-time ratio of ``variant`` averaged over data sets."""
    ratios = [
        data["variants"][variant]["epoch_time_ratio"]
        for data in results["summary"].values()
        if variant in data["variants"] and data["variants"][variant]["epoch_time_ratio"]
    ]
    return statistics.fmean(ratios) if ratios else None
