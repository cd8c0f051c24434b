"""``kdistill bench methods``: ``catalogue`` (the methods, read from ``configs/*.yaml``),
``settings`` (options and cell configs), ``runner`` (cells through the one harness),
``stats`` (means, spreads, ratios) and ``report`` (the Markdown)."""

from kdistill.studies.methods.catalogue import Method, methods
from kdistill.studies.methods.runner import run_cell, run_methods_benchmark
from kdistill.studies.methods.settings import BenchSettings, variant_config

__all__ = [
    "BenchSettings",
    "Method",
    "methods",
    "run_cell",
    "run_methods_benchmark",
    "variant_config",
]
