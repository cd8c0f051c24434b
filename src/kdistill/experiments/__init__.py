"""Declarative reproductions of papers: configs under each experiment's ``configs/`` folder,
a profile file saying how much to train, and a runner that caches every finished stage."""

from __future__ import annotations

from pathlib import Path

from kdistill.errors import KDistillError

REPRODUCTIONS = ("hinton-mnist",)


def run_reproduction(
    name: str,
    *,
    profile: str = "quick",
    output_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
) -> dict:
    """Run reproduction ``name`` with ``profile`` and write its report; returns the results."""
    if name == "hinton-mnist":
        from kdistill.experiments.hinton_mnist import run

        return run(profile=profile, output_dir=output_dir, work_dir=work_dir)
    raise KDistillError(f"unknown reproduction {name!r}: available are {', '.join(REPRODUCTIONS)}")
