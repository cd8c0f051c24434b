"""The NetAug report (``README.md`` beside ``results.json``): training and test error per model
and method, mean ± std over seeds, paired differences from each model's baseline, and whether
the lecture's two claims held on these numbers."""

from __future__ import annotations

import statistics
from typing import Any

from kdistill.studies.netaug.plan import KD, METHOD_LABELS, MODELS, NETAUG, TEACHER

DATASET_LABELS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def _mean_std(values: list[float]) -> tuple[float, float]:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread


def _rates(runs: list[dict[str, Any]], split: str) -> list[float]:
    return [100.0 * run[f"{split}_errors"] / run[f"{split}_total"] for run in runs]


def summarise(cells: dict[str, dict[str, dict[str, list[dict[str, Any]]]]]) -> dict[str, Any]:
    """Data set -> model -> method -> error rates (%) and paired deltas from the baseline."""
    summary: dict[str, Any] = {}
    for data_name, models in cells.items():
        summary[data_name] = {}
        for model_key, methods in models.items():
            rows = {}
            baseline = methods["baseline"]
            for method, runs in methods.items():
                if not runs:
                    continue
                row: dict[str, Any] = {"seconds": statistics.mean(r["seconds"] for r in runs)}
                for split in ("train", "test"):
                    rates = _rates(runs, split)
                    row[split] = _mean_std(rates)
                    if method != "baseline":
                        deltas = [
                            a - b for a, b in zip(rates, _rates(baseline, split), strict=True)
                        ]
                        row[f"delta_{split}"] = _mean_std(deltas)
                        row[f"lower_{split}"] = sum(d < 0 for d in deltas)
                rows[method] = row
            summary[data_name][model_key] = rows
    return summary


def _pm(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} ± {pair[1]:.2f}"


def _delta(row: dict[str, Any], split: str, seeds: int) -> str:
    if f"delta_{split}" not in row:
        return "—"
    mean, std = row[f"delta_{split}"]
    return f"{mean:+.2f} ± {std:.2f} ({row[f'lower_{split}']}/{seeds} lower)"


def _direction(mean: float, std: float) -> str:
    size = "within the seed spread" if abs(mean) <= std else "beyond the seed spread"
    word = "lower" if mean < 0 else "higher" if mean > 0 else "unchanged"
    return f"{word} by {abs(mean):.2f} pp ({size})"


def verdicts(summary: dict[str, Any]) -> list[str]:
    """One line per data set and model: the lecture's claim for its size, and what happened."""
    lines = []
    for data_name, models in summary.items():
        for model_key, rows in models.items():
            if "netaug" not in rows:
                continue
            row = rows["netaug"]
            train, test = row["delta_train"], row["delta_test"]
            if MODELS[model_key]["size"] == "tiny":
                claim = "NetAug lowers training and test error"
                held = train[0] < 0 and test[0] < 0
                partly = train[0] < 0 or test[0] < 0
            else:
                claim = "NetAug lowers training error but raises test error"
                held = train[0] < 0 < test[0]
                # The claim is that NetAug *hurts* a large model: without a higher test error
                # it did not hold, whatever the training error did.
                partly = test[0] > 0
            outcome = "held" if held else "held in part" if partly else "did not hold"
            baseline = rows["baseline"]
            lines.append(
                f"- {DATASET_LABELS.get(data_name, data_name)}, {MODELS[model_key]['label']}: "
                f"claim “{claim}” **{outcome}**: training error {_direction(*train)}, "
                f"test error {_direction(*test)} vs the baseline (baseline: "
                f"{baseline['train'][0]:.2f}% training, {baseline['test'][0]:.2f}% test error)."
            )
    return lines


def _large_regime(summary: dict[str, Any], epochs: int) -> str:
    """Whether the large models reached the overfitting regime the lecture's claim is about."""
    rates = [
        (DATASET_LABELS.get(name, name), rows["baseline"]["train"][0], rows["baseline"]["test"][0])
        for name, models in summary.items()
        for key, rows in models.items()
        if MODELS[key]["size"] == "large" and "baseline" in rows
    ]
    if not rates:
        return ""
    listed = "; ".join(f"{name} {train:.2f}% / {test:.2f}%" for name, train, test in rates)
    return (
        f"The large models' baselines ended {epochs} epochs at these training / test errors: "
        f"{listed}. A model that still makes training errors is not yet in the overfitting "
        "regime the large-model claim is about; a longer budget (until the baseline's "
        "training error is near zero) is the test this table does not make.\n"
    )


def render_report(report: dict[str, Any]) -> str:
    seeds = len(report["seeds"])
    summary = report["summary"]
    parts = [
        "# Network Augmentation on tiny and large models (MNIST, Fashion-MNIST)\n",
        "Network Augmentation (Cai et al., ICLR 2022) trains a model inside wider copies of "
        "itself that share its weights: each step the base model and one sampled augmented "
        "model (every hidden layer 1.0x, 1.8x or 2.6x the base width, drawn per layer), loss = "
        "L(base) + alpha L(augmented), alpha = "
        f"{NETAUG['aug_weight']}, channels sorted by L1 norm at each augmented epoch's start, "
        f"augmentation during the first {NETAUG['stop_fraction']:.0%} of the epochs, batch-norm "
        "statistics re-estimated on 50 training batches at the end; only the base is saved. "
        "The lecture (Han, section 5) claims it helps tiny models (training *and* test accuracy "
        "up: they underfit) and hurts large ones (training accuracy up, test accuracy down: "
        "they overfit).\n",
        f"**Command:** `{report['command']}`  \n**Machine:** {report['machine']}  \n"
        f"**Rule:** {report['rule']}.  \n"
        f"**Data:** a stratified {report['train_size']:,}-image training subset (subset seed "
        f"{report['subset_seed']}, the same for every run), the full 10,000-image test set; "
        f"{report['epochs']} epochs, batch 100, SGD (Nesterov 0.9), one epoch of linear warm-up then cosine, "
        "lr 0.05 for the MLPs and 0.1 for the CNN, no weight decay, no data augmentation.  \n"
        f"**KD:** teacher {TEACHER['label']}, trained once per data set (seed 0, same budget); "
        f"T = {KD['temperature']:g}, soft weight {KD['soft_target_weight']}, hard weight "
        f"{KD['hard_target_weight']}. NetAug + KD applies the KD loss to the base and to the "
        "augmented model.\n",
        "Teachers: "
        + ", ".join(
            f"{DATASET_LABELS.get(name, name)} {100 * t['test_errors'] / 10000:.2f}% test error"
            for name, t in report["teachers"].items()
        )
        + ".\n",
        "## Whether the lecture's claims held\n",
        "\n".join(verdicts(summary)) + "\n",
        _large_regime(summary, report["epochs"]),
    ]
    for data_name, models in summary.items():
        parts.append(f"## {DATASET_LABELS.get(data_name, data_name)}\n")
        lines = [
            "| Model | Method | Train error % | Test error % | Δ train vs baseline, pp | "
            "Δ test vs baseline, pp | s / run |",
            "|---|---|---|---|---|---|---|",
        ]
        for model_key, rows in models.items():
            for method, row in rows.items():
                lines.append(
                    f"| {MODELS[model_key]['label']} | {METHOD_LABELS[method]} | "
                    f"{_pm(row['train'])} | {_pm(row['test'])} | {_delta(row, 'train', seeds)} | "
                    f"{_delta(row, 'test', seeds)} | {row['seconds']:.0f} |"
                )
        parts.append("\n".join(lines) + "\n")
    parts.append(
        "Deltas are paired by seed (same initial base weights and batch order as the "
        "baseline); “k/n lower” counts the seeds where the method's error is below the "
        "baseline's. Seconds are wall time on the shared machine, so compare them only roughly. "
        "Per-seed errors are in `results.json`.\n"
    )
    return "\n".join(parts)
