"""What the hinton-mnist reproduction trains: its stage configs (the YAML files in
``configs/``), the profile that sets epochs, seeds and sweep values (``configs/profiles.yaml``),
and the data set a profile runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from kdistill.config import RunConfig, TeacherConfig, load_config
from kdistill.data import DataSet
from kdistill.errors import KDistillError

CONFIG_DIR = Path(__file__).parent / "configs"
PAPER_BIAS_SHIFT_MISSING_3 = 3.5
PAPER_BIAS_SHIFT_ONLY_7_8 = -7.6


def load_profile(profile: str) -> dict[str, Any]:
    profiles = yaml.safe_load((CONFIG_DIR / "profiles.yaml").read_text())
    if profile not in profiles:
        raise KDistillError(
            f"unknown profile {profile!r} for hinton-mnist: use one of {', '.join(profiles)}"
        )
    return profiles[profile]


def stage_config(name: str, overrides: list[str]) -> RunConfig:
    return load_config(CONFIG_DIR / f"{name}.yaml", overrides)


def profile_dataset(dataset: DataSet, train_size: int | None) -> DataSet:
    """The smoke profile's small data set: the first ``train_size`` training cases, 2,000 test cases."""
    if not train_size:
        return dataset
    keep = torch.arange(train_size)
    return DataSet(
        name=f"{dataset.name}[:{train_size}]",
        train=dataset.train.subset(keep),
        test=dataset.test.subset(torch.arange(2000)),
        num_classes=dataset.num_classes,
        fingerprint=f"{dataset.fingerprint}:{train_size}",
    )


def teacher_entries(paths: list[Path]) -> list[dict[str, str]]:
    """``distill.teachers`` entries for these model files."""
    return [TeacherConfig(checkpoint=str(path)).model_dump(exclude_none=True) for path in paths]
