"""What the specialists study trains: its stage configs (the YAML files in ``configs/``) and
the profile that sets seeds and epochs (``configs/profiles.yaml``).

``generalist.yaml`` is a whole run config; ``specialist.yaml`` and ``distilled.yaml`` hold only
a ``train`` section (their data and model are the generalist's); ``method.yaml`` is the
method's own settings (:class:`kdistill.config.SpecialistsConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kdistill.config import SpecialistsConfig, TrainConfig, TrainRunConfig, load_config
from kdistill.errors import KDistillError

CONFIG_DIR = Path(__file__).parent / "configs"


def load_profile(profile: str) -> dict[str, Any]:
    profiles = yaml.safe_load((CONFIG_DIR / "profiles.yaml").read_text())
    if profile not in profiles:
        raise KDistillError(
            f"unknown profile {profile!r} for specialists: use one of {', '.join(profiles)}"
        )
    return profiles[profile]


def generalist_config(seed: int, epochs: int, overrides: Sequence[str] = ()) -> TrainRunConfig:
    config = load_config(
        CONFIG_DIR / "generalist.yaml",
        [f"seed={seed}", f"train.epochs={epochs}", *overrides],
        schema=TrainRunConfig,
    )
    assert isinstance(config, TrainRunConfig)
    return config


def _validated(schema: type[BaseModel], raw: dict[str, Any], source: str) -> Any:
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise KDistillError(f"{source}: key {location}: {first['msg']}") from None


def train_section(name: str, epochs: int) -> TrainConfig:
    """The ``train`` section of ``configs/<name>.yaml`` (specialist, distilled), ``epochs`` set."""
    path = CONFIG_DIR / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"train"}
    if unknown:
        raise KDistillError(f"{path}: only a train section is read, remove {sorted(unknown)}")
    section: TrainConfig = _validated(
        TrainConfig, {**raw.get("train", {}), "epochs": epochs}, f"{path} train"
    )
    return section


def method_config() -> SpecialistsConfig:
    path = CONFIG_DIR / "method.yaml"
    config: SpecialistsConfig = _validated(
        SpecialistsConfig, yaml.safe_load(path.read_text()) or {}, str(path)
    )
    return config
