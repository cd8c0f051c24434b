"""Measured benchmarks: the methods table (``kdistill bench methods``)."""

from kdistill.benchmarks.methods import (
    METHODS,
    BenchSettings,
    Method,
    run_methods_benchmark,
    variant_config,
)

__all__ = ["METHODS", "BenchSettings", "Method", "run_methods_benchmark", "variant_config"]
