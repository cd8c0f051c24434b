"""The specialists report: Markdown + JSON + plots, written from the study's measured results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from kdistill.files import atomic_write_text  # noqa: E402

__all__ = ["PAPER_TABLE_3", "PAPER_TABLE_4", "write_report"]

PAPER_TABLE_3 = {
    "generalist": {"accuracy": 0.250, "conditional_accuracy": 0.431},
    "ensemble": {"accuracy": 0.261, "conditional_accuracy": 0.459},
}
"""Hinton et al. (2015), Table 3 (JFT, 15,000 classes, 61 specialists): top-1 accuracy."""

PAPER_TABLE_4 = [
    ("0", 350_037, 0, 0.0),
    ("1", 141_993, 1421, 0.034),
    ("2", 67_161, 1572, 0.074),
    ("3", 38_801, 1124, 0.088),
    ("4", 26_298, 835, 0.105),
    ("5", 16_474, 561, 0.111),
    ("6", 10_682, 362, 0.113),
    ("7", 7_376, 232, 0.128),
    ("8", 4_703, 182, 0.136),
    ("9", 4_706, 208, 0.166),
    ("10+", 9_082, 324, 0.141),
]
"""Table 4: (specialists covering the true class, test examples, change in top-1 correct,
relative change)."""


def _pct(stat: dict[str, Any]) -> str:
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}%"


def _coverage_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 4 summed over seeds (each seed has its own groups, so its own coverage counts)."""
    rows: dict[str, dict[str, Any]] = {}
    for seed, outcome in results["seeds"].items():
        for row in outcome["ensemble"]["table_4"]:
            entry = rows.setdefault(
                row["specialists"],
                {"examples": 0, "generalist_correct": 0, "change": 0, "per_seed": {}},
            )
            entry["examples"] += row["examples"]
            entry["generalist_correct"] += row["generalist_correct"]
            entry["change"] += row["change"]
            entry["per_seed"][seed] = row["change"]
    ordered = sorted(rows.items(), key=lambda item: int(item[0].rstrip("+")))
    return [
        {
            "specialists": key,
            **value,
            "relative": value["change"] / value["generalist_correct"]
            if value["generalist_correct"]
            else 0.0,
        }
        for key, value in ordered
    ]


def _confusion_plot(path: Path, confusion: list[list[int]], groups: list[list[int]]) -> None:
    """The generalist's mistakes (validation pairs, log scale), classes ordered by the group
    that first lists them, each group's block outlined (a class in several groups sits in the
    first)."""
    matrix = np.array(confusion, dtype=float)
    np.fill_diagonal(matrix, 0)
    order: list[int] = []
    blocks = []
    for group in groups:
        new = [c for c in group if c not in order]
        blocks.append((len(order), len(new)))
        order += new
    order += [c for c in range(len(matrix)) if c not in order]
    shown = np.log1p(matrix[np.ix_(order, order)])
    figure, axes = plt.subplots(figsize=(8, 8))
    axes.imshow(shown, cmap="magma_r")
    for start, size in blocks:
        if size:
            axes.add_patch(
                Rectangle(
                    (start - 0.5, start - 0.5), size, size, fill=False, edgecolor="tab:blue", lw=1.5
                )
            )
    labels = [f"{c:02d}" for c in order]
    axes.set_xticks(range(len(order)), labels, fontsize=4, rotation=90)
    axes.set_yticks(range(len(order)), labels, fontsize=4)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("generalist's errors (log 1 + count), specialists' groups outlined")
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def _coverage_plot(path: Path, rows: list[dict[str, Any]]) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    paper = {key: relative for key, _, _, relative in PAPER_TABLE_4}
    keys = [row["specialists"] for row in rows]
    positions = np.arange(len(keys))
    axes.bar(positions - 0.2, [100 * paper.get(k, np.nan) for k in keys], 0.4, label="paper (JFT)")
    axes.bar(positions + 0.2, [100 * r["relative"] for r in rows], 0.4, label="ours (MNIST-100)")
    axes.axhline(0, color="black", lw=0.8)
    axes.set_xticks(positions, keys)
    axes.set_xlabel("specialists covering the true class")
    axes.set_ylabel("relative change in top-1 correct (%)")
    axes.set_title("Table 4: gain by coverage")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _findings(results: dict[str, Any], coverage: list[dict[str, Any]]) -> list[str]:
    table = results["table_3"]
    gain = table["ensemble_accuracy"]["mean"] - table["generalist_accuracy"]["mean"]
    conditional_gain = (
        table["ensemble_conditional"]["mean"] - table["generalist_conditional"]["mean"]
    )
    seeds = results["seeds"]
    changed = [s["ensemble"]["changed_predictions"] for s in seeds.values()]
    lines = []
    if gain > 0:
        lines.append(
            f"- Specialists raise test accuracy by {100 * gain:.2f} points on average "
            f"(conditional accuracy {100 * conditional_gain:+.2f} points), the paper's direction."
        )
    else:
        lines.append(
            f"- **Specialists do not help here**: test accuracy changes by {100 * gain:+.2f} "
            f"points on average (conditional {100 * conditional_gain:+.2f}). The paper's gain "
            "is not reproduced on this task; see the rows of Table 4 and the per-seed figures."
        )
    lines.append(
        f"- The combination changed {', '.join(map(str, changed))} test predictions (per seed) "
        f"out of {results['data']['test']}."
    )
    covered = [row for row in coverage if row["specialists"] != "0"]
    if covered:
        best = max(covered, key=lambda row: row["relative"])
        lines.append(
            f"- The best row of Table 4 is classes covered by {best['specialists']} "
            f"specialist(s) ({100 * best['relative']:+.2f}%); uncovered classes change by "
            f"{coverage[0]['change']:+d} correct predictions in all (the paper: 0)."
            if coverage and coverage[0]["specialists"] == "0"
            else ""
        )
    in_group = [
        row for s in seeds.values() for row in s["ensemble"].get("specialists_in_group", [])
    ]
    if in_group:

        def mean(key: str) -> float:
            return sum(row[key] for row in in_group) / len(in_group)

        lines.append(
            f"- Why: on the test pairs of their own classes the specialists are right "
            f"{100 * mean('specialist_accuracy'):.2f}% of the time among those classes, the "
            f"generalist restricted to the same classes {100 * mean('generalist_accuracy'):.2f}% "
            f"(mean over {len(in_group)} specialists and the seeds); they call "
            f"{100 * mean('own_called_dustbin'):.1f}% of their own pairs dustbin and "
            f"{100 * mean('others_not_dustbin'):.1f}% of the other pairs one of their classes. "
            "A specialist that knows no more than the generalist about its classes can only "
            "add noise to eq. 5."
        )
    distilled = table["distilled_accuracy"]["mean"]
    versus = distilled - table["ensemble_accuracy"]["mean"]
    lines.append(
        f"- The single distilled model reaches {100 * distilled:.2f}% "
        f"({100 * versus:+.2f} points against the ensemble, "
        f"{100 * (distilled - table['generalist_accuracy']['mean']):+.2f} against the generalist)."
    )
    return [line for line in lines if line]


def write_report(results: dict[str, Any], output_dir: str | Path) -> Path:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / "results.json", json.dumps(results, indent=2) + "\n")
    table = results["table_3"]
    seeds = list(results["seeds"])
    first = results["seeds"][seeds[0]]
    coverage = _coverage_rows(results)
    _confusion_plot(
        output_dir / "confusion.png", first["clusters"]["confusion"], first["clusters"]["groups"]
    )
    _coverage_plot(output_dir / "table4.png", coverage)
    method = results["method"]
    settings = results["settings"]
    lines = [
        f"# Generalist + specialists (Hinton et al. 2015, section 5): {results['profile']} profile",
        "",
        f"MNIST-100 ({results['data']['train']:,} training pairs, 10,000 of them carved off for "
        f"the clustering; {results['data']['test']:,} test pairs), seeds {seeds}, "
        f"{results['rule']}. Command: `kdistill reproduce specialists --profile "
        f"{results['profile']} --workers {results['workers']}` "
        f"(the units took {results.get('work_seconds', 0) / 60:.1f} min when they ran, this "
        f"invocation {results['total_seconds'] / 60:.1f} min; machine: "
        f"{results['machine']['platform']}, 2-core CPU shared with other jobs, one thread per "
        "process).",
        "",
        "## Table 3: top-1 accuracy",
        "",
        "| system | paper test | paper conditional | ours test | ours conditional |",
        "|---|---|---|---|---|",
        f"| generalist | 25.0% | 43.1% | {_pct(table['generalist_accuracy'])} | "
        f"{_pct(table['generalist_conditional'])} |",
        f"| generalist + specialists | 26.1% | 45.9% | {_pct(table['ensemble_accuracy'])} | "
        f"{_pct(table['ensemble_conditional'])} |",
        f"| distilled single model (beyond the paper) | - | - | "
        f"{_pct(table['distilled_accuracy'])} | - |",
        "",
        "Conditional accuracy: test pairs whose true class some specialist covers, predictions "
        "restricted to the covered classes. Paper: JFT, 15,000 classes, 61 specialists of 300 "
        f"classes. Ours: {method['num_specialists']} specialists of "
        f"{method['classes_per_specialist']} classes (overlap {method['overlap']}), generalist "
        f"{settings['generalist_epochs']} epochs, specialists {settings['specialist_epochs']}, "
        f"distilled model {settings['distilled_epochs']}; top-{method['top_n']} activation, "
        f"dustbin shift rule `{method['dustbin_shift']}`.",
        "",
        "Per seed (test accuracy generalist -> ensemble -> distilled):",
        "",
    ]
    for seed in seeds:
        outcome = results["seeds"][seed]
        ensemble = outcome["ensemble"]
        lines.append(
            f"- seed {seed}: {100 * ensemble['generalist']['accuracy']:.2f}% -> "
            f"{100 * ensemble['ensemble']['accuracy']:.2f}% -> "
            f"{100 * outcome['distilled']['test_accuracy']:.2f}%; "
            f"{ensemble['active_per_example']:.2f} active specialists per test pair, "
            f"{ensemble['examples_with_active']} pairs with at least one"
        )
    lines += [
        "",
        "## Table 4: gain by the number of specialists covering the true class",
        "",
        "Ours summed over the seeds (each seed has its own groups); relative = change / "
        "generalist's correct predictions in that row.",
        "",
        "| specialists | paper examples | paper change | paper relative | ours examples | "
        "ours change (per seed) | ours relative |",
        "|---|---|---|---|---|---|---|",
    ]
    paper = {key: (n, change, rel) for key, n, change, rel in PAPER_TABLE_4}
    keys = list(dict.fromkeys([*paper, *(row["specialists"] for row in coverage)]))
    ours = {row["specialists"]: row for row in coverage}
    for key in keys:
        known = paper.get(key)
        paper_cells = (
            f"{known[0]:,} | {known[1]:+,} | {100 * known[2]:+.1f}%" if known else "- | - | -"
        )
        row = ours.get(key)
        our_cells = (
            f"{row['examples']:,} | {row['change']:+d} ("
            + ", ".join(f"{v:+d}" for v in row["per_seed"].values())
            + f") | {100 * row['relative']:+.2f}%"
            if row
            else "- | - | -"
        )
        lines.append(f"| {key} | {paper_cells} | {our_cells} |")
    lines += ["", "![Table 4](table4.png)", "", "## Findings", "", *_findings(results, coverage)]
    lines += [
        "",
        f"## The groups found (seed {seeds[0]})",
        "",
        "K-means on the columns of the covariance of the generalist's predicted probabilities "
        "on the carved-off validation pairs"
        + (
            " (columns scaled to unit length, `normalize_columns`; the paper uses them raw)"
            if method.get("normalize_columns")
            else " (raw columns, as the paper)"
        )
        + "; no label is read to form them. The share of the "
        "generalist's mistakes on a group's classes that land inside the group, beside what "
        "uniform mistakes would give, shows they are classes it confuses.",
        "",
        "| # | classes | errors | inside | share inside | if uniform |",
        "|---|---|---|---|---|---|",
    ]
    for index, row in enumerate(first["clusters"]["confusion_inside"]):
        classes = " ".join(f"{c:02d}" for c in row["classes"])
        lines.append(
            f"| {index} | {classes} | {row['errors']} | {row['errors_inside']} | "
            f"{100 * row['share_inside']:.1f}% | {100 * row['share_if_uniform']:.1f}% |"
        )
    lines += ["", "![confusion](confusion.png)", "", "## Specialists", ""]
    specialists = first["specialists"]["specialists"]
    in_group = first["ensemble"].get("specialists_in_group") or [{} for _ in specialists]
    lines += [
        "Seed " + seeds[0] + "; accuracy among the specialist's classes on the test pairs of "
        "those classes (the generalist restricted to the same classes beside it).",
        "",
        "| # | classes | share of training pairs | dustbin shift | specialist | generalist "
        "| own pairs called dustbin |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, extra in zip(specialists, in_group, strict=True):
        measured = (
            f"{100 * extra['specialist_accuracy']:.2f}% | {100 * extra['generalist_accuracy']:.2f}% "
            f"| {100 * extra['own_called_dustbin']:.1f}%"
            if extra
            else "- | - | -"
        )
        lines.append(
            f"| {row['index']} | {len(row['classes'])} | {100 * row['subset_fraction']:.1f}% | "
            f"{row['dustbin_shift']:.3f} | {measured} |"
        )
    timing = results.get("timing") or {}
    lines += ["", "Wall time of specialist training:", ""]
    for seed in seeds:
        trained = results["seeds"][seed]["specialists"]
        lines.append(
            f"- seed {seed}: {len(trained['specialists'])} specialists in "
            f"{trained['wall_seconds']:.0f} s with {trained['workers']} worker(s)"
        )
    if timing.get("specialists"):
        lines.append(
            f"- the first {timing['specialists']} specialists of seed {seeds[0]} again: "
            f"{timing['1']:.0f} s with 1 worker, {timing['2']:.0f} s with 2 workers "
            f"(speed-up {timing['1'] / timing['2']:.2f}x on 2 shared cores)"
        )
    cards = results.get("model_cards")
    if cards:
        lines += [
            "",
            "## Size and CPU latency (one example, one thread, median)",
            "",
            "| model | parameters | latency |",
            "|---|---|---|",
        ]
        for name, card in cards.items():
            lines.append(f"| {name} | {card['parameters']:,} | {card['latency_ms']:.2f} ms |")
        lines.append("")
        lines.append(
            "The ensemble's latency runs every specialist and solves eq. 5 by gradient descent "
            f"({method['inference_steps']} steps at most)."
        )
    lines.append("")
    path = output_dir / "README.md"
    atomic_write_text(path, "\n".join(lines))
    return path
