"""``kdistill bench``: measured benchmarks (methods table, throughput)."""

from __future__ import annotations

import argparse


def add_bench_verb(verbs: argparse._SubParsersAction) -> None:
    """Register ``kdistill bench`` on the main parser."""


def run_bench(args: argparse.Namespace) -> int | None:
    """Run ``kdistill bench ...``; returns None when ``args`` is not a bench verb."""
    return None
