"""The tables of ``kdistill bench self-online`` (``TABLES.md`` beside ``results.json``): test
error per method, mean ± std over seeds, and the paired difference from each model's
independent baseline."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from kdistill.studies.self_online.suites import SUITES


def percent(errors: list[int], total: int) -> tuple[float, float]:
    values = [100.0 * e / total for e in errors]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread


def rows_for(data_name: str, per_seed: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    """Table rows: (method, model, errors per seed, baseline errors per seed for the delta)."""
    suite = SUITES[data_name]
    a, b = suite["A_label"], suite["B_label"]

    def col(getter) -> list[int]:
        return [int(getter(r)) for r in per_seed]

    a0 = col(lambda r: r["alone-A0"]["errors"])
    a1 = col(lambda r: r["alone-A1"]["errors"])
    b1 = col(lambda r: r["alone-B1"]["errors"])
    rows = [
        ("Independent (= BAN teacher T, gen 0)", a, a0, None),
        ("Independent, 2nd init (DML A+A member 1 alone)", a, a1, None),
        ("Independent", b, b1, None),
        ("Ensemble of 2 independent", f"2 x {a}", col(lambda r: r["ensemble-A0-A1"]["errors"]), a0),
    ]
    for k in (1, 2, 3):
        rows.append((f"Born-again gen {k}", a, col(lambda r, k=k: r["ban"]["errors"][k]), a0))
    for k in (2, 3):
        rows.append(
            (
                f"BAN ensemble gens 1..{k}",
                f"{k} x {a}",
                col(lambda r, k=k: r["ban"]["ensemble_errors"][k - 1]),
                a0,
            )
        )
    rows += [
        ("DML A+A, member 0", a, col(lambda r: r["dml-same"]["errors"][0]), a0),
        ("DML A+A, member 1", a, col(lambda r: r["dml-same"]["errors"][1]), a1),
        ("DML A+A, cohort ensemble", f"2 x {a}", col(lambda r: r["dml-same"]["cohort_errors"]), a0),
        ("DML A+B, member 0", a, col(lambda r: r["dml-mixed"]["errors"][0]), a0),
        ("DML A+B, member 1", b, col(lambda r: r["dml-mixed"]["errors"][1]), b1),
        (
            "DML A+B, cohort ensemble",
            f"{a} + {b}",
            col(lambda r: r["dml-mixed"]["cohort_errors"]),
            a0,
        ),
    ]
    table = []
    for method, model, errors, baseline in rows:
        mean, std = percent(errors, total)
        row = {"method": method, "model": model, "errors": errors, "mean": mean, "std": std}
        if baseline is not None:
            deltas = [100.0 * (e - b_) / total for e, b_ in zip(errors, baseline, strict=True)]
            row["delta_mean"] = statistics.mean(deltas)
            row["delta_std"] = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
            row["wins"] = sum(e < b_ for e, b_ in zip(errors, baseline, strict=True))
        table.append(row)
    return table


def markdown_table(rows: list[dict[str, Any]], seeds: int) -> str:
    lines = [
        "| Method | Model | Test error % (mean ± std) | Δ vs its independent baseline, pp (paired) | Better in | Test errors per seed |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        delta = f"{row['delta_mean']:+.2f} ± {row['delta_std']:.2f}" if "delta_mean" in row else "—"
        wins = f"{row['wins']}/{seeds}" if "wins" in row else "—"
        lines.append(
            f"| {row['method']} | {row['model']} | {row['mean']:.2f} ± {row['std']:.2f} | "
            f"{delta} | {wins} | {', '.join(map(str, row['errors']))} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, 1 thread; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"torch {torch.__version__} CPU"
    )


def render_tables(report: dict[str, Any]) -> str:
    parts = []
    for name, rows in report["tables"].items():
        suite = SUITES[name]
        parts.append(
            f"### {suite['title']}: {report['train_size']:,} training images (stratified subset), "
            f"{report['test_size'][name]:,} test images, {report['epochs'][name]} epochs\n\n"
            f"A = {suite['A_label']}, B = {suite['B_label']}; SGD lr {suite['lr']} (Nesterov 0.9), "
            f"cosine, batch 100.\n\n" + markdown_table(rows, len(report["seeds"]))
        )
    return "\n\n".join(parts) + "\n"
