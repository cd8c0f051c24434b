"""Matplotlib figures for reports, written headless (Agg) as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def line_plot(
    path: Path,
    series: dict[str, tuple[list[float], list[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
) -> None:
    figure, axes = plt.subplots(figsize=(6, 4))
    for label, (xs, ys) in series.items():
        axes.plot(xs, ys, marker="o", label=label)
    if logx:
        axes.set_xscale("log")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def grouped_bars(
    path: Path, groups: dict[str, list[float]], *, labels: list[str], title: str, ylabel: str
) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(groups))
    for index, (name, values) in enumerate(groups.items()):
        axes.bar([i + index * width for i in range(len(values))], values, width=width, label=name)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
