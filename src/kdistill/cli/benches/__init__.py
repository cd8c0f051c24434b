"""``kdistill bench NAME``: one module per benchmark, each with ``NAME``, ``add(benches)``
(its arguments) and ``run(args)`` (its call into ``kdistill.studies``); ``common.py`` holds the
arguments they share. A new benchmark is a module here and a line in :data:`BENCHES`."""

from __future__ import annotations

import argparse
from types import ModuleType

from kdistill.cli.benches import (
    dense,
    deploy,
    gan_compression,
    language,
    methods,
    netaug,
    self_online,
    speed,
)
from kdistill.errors import KDistillError

__all__ = ["BENCHES", "add_bench_verb", "run_bench"]

BENCHES: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        methods, self_online, deploy, netaug, speed, gan_compression, language, dense
    )
}  # fmt: skip


def add_bench_verb(verbs: argparse._SubParsersAction) -> None:
    """Register ``kdistill bench`` and every benchmark under it on the main parser."""
    bench = verbs.add_parser(
        "bench",
        help="measured benchmarks (the distillation methods table, self/online distillation)",
        description="Run a benchmark and write its table (Markdown + JSON).",
    )
    benches = bench.add_subparsers(dest="bench", metavar="BENCH")
    for module in BENCHES.values():
        module.add(benches)


def run_bench(args: argparse.Namespace) -> int | None:
    """Run ``kdistill bench ...``; returns None when ``args`` is not a bench verb."""
    if args.verb != "bench":
        return None
    module = BENCHES.get(args.bench or "")
    if module is None:
        raise KDistillError(
            f"kdistill bench needs a benchmark name: kdistill bench {', '.join(BENCHES)}"
        )
    status: int = module.run(args)
    return status
