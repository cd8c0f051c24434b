"""What the dense benchmark trains: per task (segmentation, detection) the teacher, the student
alone, the student with each distillation term and with all of them (segmentation: pixel-wise
and pair-wise, then all three with the holistic adversarial term); every cell a run config read from the
package's ``configs/`` (linked as top-level ``configs/dense/``) with its seed, epochs and
transfer-set fraction set here."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kdistill.config import RunConfig, parse_config

SEG_METHODS = ("student", "pixel", "pairwise", "holistic", "all", "full")
SEG_LABELS = {
    "student": "student alone (l_mc)",
    "pixel": "student + pixel-wise (10 l_pi)",
    "pairwise": "student + pair-wise (1 l_pa)",
    "holistic": "student + holistic (0.1 l_ho)",
    "all": "student + pixel-wise + pair-wise",
    "full": "student + all three (eq. 4)",
}
# The terms of seg-distill-holistic.yaml each cell keeps, and whether it keeps its
# distill.holistic section (the adversarial term).
_SEG_TERMS: dict[str, tuple[tuple[str, ...], bool]] = {
    "pixel": (("pixel_kl",), False),
    "pairwise": (("pairwise",), False),
    "holistic": ((), True),
    "all": (("pixel_kl", "pairwise"), False),
    "full": (("pixel_kl", "pairwise"), True),
}


def _raw(name: str) -> dict[str, Any]:
    text = resources.files("kdistill.studies.dense").joinpath("configs", name).read_text()
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def _settle(raw: dict[str, Any], seed: int, epochs: int, fraction: float) -> dict[str, Any]:
    raw = dict(raw, seed=seed)
    # channels_last: oneDNN's fast convolution layout, ~1.25x per step here (kdistill bench
    # speed); outside the config digest, so units trained without it are still read back.
    raw["train"] = dict(raw["train"], epochs=epochs, progress=False, threads=1, channels_last=True)
    if fraction < 1:
        raw["data"] = dict(raw["data"], train_fraction=fraction)
    return raw


def seg_teacher_config(epochs: int) -> RunConfig:
    """The one teacher (seed 0, the whole training set), shared by every seed's students."""
    return parse_config(_settle(_raw("seg-teacher.yaml"), 0, epochs, 1.0))


def _with_lr(raw: dict[str, Any], lr: float | None) -> dict[str, Any]:
    if lr is not None:
        raw["train"] = dict(raw["train"], optimizer=dict(raw["train"]["optimizer"], lr=lr))
    return raw


def seg_cell_config(
    method: str, seed: int, epochs: int, fraction: float, teacher: Path, lr: float | None = None
) -> RunConfig:
    """One student cell: ``method`` of :data:`SEG_METHODS` with ``seed`` (and the students'
    learning rate ``lr`` instead of the config's)."""
    if method == "student":
        return parse_config(_with_lr(_settle(_raw("seg-student.yaml"), seed, epochs, fraction), lr))
    if method not in _SEG_TERMS:
        raise ValueError(f"unknown method {method!r}")
    keep, holistic = _SEG_TERMS[method]
    # seg-distill.yaml for the cells without the holistic term (so their digests, and the
    # runs already made, stay as they were); seg-distill-holistic.yaml is it plus holistic.
    name = "seg-distill-holistic.yaml" if holistic else "seg-distill.yaml"
    raw = _with_lr(_settle(_raw(name), seed, epochs, fraction), lr)
    raw["distill"] = dict(
        raw["distill"],
        teachers=[{"checkpoint": str(teacher)}],
        terms=[term for term in raw["distill"]["terms"] if term["kind"] in keep],
    )
    return parse_config(raw)


DET_METHODS = ("student", "soft", "bounded", "hint", "all")
DET_LABELS = {
    "student": "student alone (ground truth)",
    "soft": "student + soft targets (w0 = 1.5)",
    "bounded": "student + bounded regression (m = 0)",
    "hint": "student + hint (1x1 adapter)",
    "all": "student + all three",
}
_DET_TERMS = {
    "soft": ("detection_soft_targets",),
    "bounded": ("bounded_regression",),
    "hint": ("fitnet",),
    "all": ("detection_soft_targets", "bounded_regression", "fitnet"),
}


def det_teacher_config(epochs: int, fraction: float) -> RunConfig:
    """The detection teacher (seed 0) on ``fraction`` of the canvases."""
    return parse_config(_settle(_raw("det-teacher.yaml"), 0, epochs, fraction))


def _widen(raw: dict[str, Any], width: int) -> dict[str, Any]:
    """The student's channels (encoder and decoder) times ``width``; 1 leaves the config (and
    its digest) as it is."""
    if width == 1:
        return raw
    kwargs = raw["model"]["kwargs"]
    wider = dict(
        kwargs,
        channels=[width * channels for channels in kwargs["channels"]],
        decoder_channels=width * kwargs["decoder_channels"],
    )
    return dict(raw, model=dict(raw["model"], kwargs=wider))


def det_cell_config(
    method: str, seed: int, epochs: int, fraction: float, teacher: Path, student_width: int = 1
) -> RunConfig:
    """One detection student cell: ``method`` of :data:`DET_METHODS` with ``seed``, the
    student's channels ``student_width`` times those of its config."""
    if method == "student":
        raw = _settle(_raw("det-student.yaml"), seed, epochs, fraction)
        return parse_config(_widen(raw, student_width))
    if method not in _DET_TERMS:
        raise ValueError(f"unknown method {method!r}")
    raw = _widen(_settle(_raw("det-distill.yaml"), seed, epochs, fraction), student_width)
    keep = ("detection_targets", *_DET_TERMS[method])
    raw["distill"] = dict(
        raw["distill"],
        teachers=[{"checkpoint": str(teacher)}],
        terms=[term for term in raw["distill"]["terms"] if term["kind"] in keep],
    )
    return parse_config(raw)
