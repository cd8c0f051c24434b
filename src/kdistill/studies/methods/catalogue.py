"""The methods of ``kdistill bench methods``, read from their configs: the single source.

Every ``configs/*.yaml`` beside this module (linked from the repository's
``configs/methods/``) is a run config a person can train by hand. A method of the table is a
config whose header says so::

    # <what the method is, paper and year>.
    # Method: <label>, row <n> of kdistill bench methods.
    # Weight: <where the weight comes from>.

Its loss terms are the config's ``distill.terms``; the header gives the table's label, row
order and the source of the weight (comments, because a run config takes no other keys).
Configs without that header (``teacher``, ``student``, ``kd``, ``fitnet-two-stage``) are the
baselines and extra recipes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from kdistill.config import DistillRunConfig, RunConfig, load_config
from kdistill.errors import KDistillError

CONFIG_DIR = Path(__file__).parent / "configs"
_METHOD_LINE = re.compile(
    r"^# Method: (?P<label>.+), row (?P<row>\d+) of kdistill bench methods\.$"
)
_WEIGHT_LINE = re.compile(r"^# Weight: (?P<source>.+?)\.?$")


@dataclass(frozen=True)
class Method:
    """One method of the table: its loss term(s) as config entries (``distill.terms``).

    Module paths are those of :class:`kdistill.models.cnn.SmallCNN` with three blocks, for the
    student and the teacher alike: ``features.0`` conv, ``.1`` BatchNorm, ``.2`` ReLU, ``.3``
    max-pool (28 -> 14), ``.4`` .. ``.7`` the second block (14 -> 7), ``.8`` .. ``.11`` the
    third (7 -> 3), ``pool`` the global average (the embedding), ``classifier.1`` the head.
    """

    key: str
    label: str
    terms: tuple[dict[str, Any], ...]
    source: str
    """Where the weight comes from."""
    row: int
    path: Path

    def term_entries(self) -> list[dict[str, Any]]:
        return [dict(term) for term in self.terms]


def config_paths() -> dict[str, Path]:
    """Every config of the catalogue by name (file stem), sorted."""
    return {path.stem: path for path in sorted(CONFIG_DIR.glob("*.yaml"))}


def load_catalogue_config(name: str) -> RunConfig:
    """The run config ``name`` (e.g. ``teacher``, ``at``) as a person would train it."""
    paths = config_paths()
    if name not in paths:
        raise KDistillError(f"no config {name!r} in {CONFIG_DIR}: use one of {', '.join(paths)}")
    return load_config(paths[name])


def _method(key: str, path: Path) -> Method | None:
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    found = [m for m in map(_METHOD_LINE.match, header) if m]
    if not found:
        return None
    weight = [m for m in map(_WEIGHT_LINE.match, header) if m]
    if not weight:
        raise KDistillError(
            f"{path}: a method config needs a '# Weight: ...' line after '# Method:'"
        )
    config = load_config(path)
    if not isinstance(config, DistillRunConfig) or not config.distill.terms:
        raise KDistillError(f"{path}: a method config needs distill.terms (the method's term)")
    return Method(
        key=key,
        label=found[0]["label"],
        terms=tuple(term.model_dump() for term in config.distill.terms),
        source=weight[0]["source"],
        row=int(found[0]["row"]),
        path=path,
    )


@cache
def methods() -> dict[str, Method]:
    """The table's methods in row order, keyed by config name."""
    found = [m for key, path in config_paths().items() if (m := _method(key, path)) is not None]
    rows = [m.row for m in found]
    if len(set(rows)) != len(rows):
        raise KDistillError(f"{CONFIG_DIR}: two method configs claim the same row: {sorted(rows)}")
    return {m.key: m for m in sorted(found, key=lambda m: m.row)}


def label(key: str) -> str:
    """The table's name of a row key: ``student``, ``kd``, ``rkd`` or a method."""
    fixed = {"student": "student", "kd": "KD", "rkd": "RKD"}
    return fixed[key] if key in fixed else methods()[key].label
