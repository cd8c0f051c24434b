"""Studies that write a committed report: paper reproductions (``kdistill reproduce``) and
measured benchmarks (``kdistill bench``), every unit of work cached by the one harness in
:mod:`kdistill.studies.stages`.

* ``hinton_mnist/``: ``kdistill reproduce hinton-mnist`` (configs, profiles, runner, analysis);
* ``methods/``: ``kdistill bench methods`` (catalogue from ``configs/methods/*.yaml``, runner,
  statistics, report);
* ``self_online/``: ``kdistill bench self-online`` (born-again and deep mutual learning);
* ``specialists/``: ``kdistill reproduce specialists`` (generalist + specialists, section 5).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kdistill.errors import KDistillError


def _hinton_mnist() -> Callable[..., dict]:
    from kdistill.studies.hinton_mnist import run

    return run


def _specialists() -> Callable[..., dict]:
    from kdistill.studies.specialists import run

    return run


REPRODUCTIONS: dict[str, Callable[[], Callable[..., dict]]] = {
    "hinton-mnist": _hinton_mnist,
    "specialists": _specialists,
}
"""Name -> a function returning the reproduction's ``run`` (imported only when asked for)."""


def run_reproduction(
    name: str,
    *,
    profile: str = "quick",
    output_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
    workers: int | None = None,
) -> dict:
    """Run reproduction ``name`` with ``profile`` and write its report; returns the results.
    ``workers``: processes for independent units (the specialists), where a study has them."""
    if name not in REPRODUCTIONS:
        raise KDistillError(
            f"unknown reproduction {name!r}: available are {', '.join(REPRODUCTIONS)}"
        )
    run = REPRODUCTIONS[name]()
    if workers is None:
        return run(profile=profile, output_dir=output_dir, work_dir=work_dir)
    if name != "specialists":
        raise KDistillError(f"--workers applies to the specialists reproduction, not {name!r}")
    return run(profile=profile, output_dir=output_dir, work_dir=work_dir, workers=workers)
