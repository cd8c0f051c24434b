"""The config type of each verb: what every run has (:class:`RunConfig`) plus the one section
its verb reads; a section another verb reads is refused by name."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from kdistill.config.sections import (
    BornAgainConfig,
    DataConfig,
    DistillConfig,
    GanConfig,
    ModelConfig,
    MutualConfig,
    NetAugConfig,
    OptimizerConfig,
    ParameterGroupConfig,
    TrainConfig,
    _Strict,
)
from kdistill.errors import KDistillError


def _check_gan(config: RunConfig, gan: GanConfig | None) -> None:
    if config.task == "generation" and gan is None:
        raise ValueError(
            "task generation needs a gan section with gan.classifier (a kdistill classifier "
            "of this data set)"
        )
    if gan is not None and config.task != "generation":
        raise ValueError("a gan section needs task: generation")
    if gan is not None:
        _check_group(gan.discriminator_optimizer, config.train.optimizer, "gan")


def _check_group(
    group: ParameterGroupConfig | None, optimizer: OptimizerConfig, section: str
) -> None:
    """A parameter group's keys must exist on the run's optimizer: betas are AdamW's,
    momentum SGD's."""
    if group is None:
        return
    key = f"{section}.discriminator_optimizer"
    if group.betas is not None and optimizer.name != "adamw":
        raise ValueError(
            f"{key}.betas needs train.optimizer.name: adamw (it is {optimizer.name}): "
            "remove betas or switch the optimizer"
        )
    if group.momentum is not None and optimizer.name != "sgd":
        raise ValueError(
            f"{key}.momentum needs train.optimizer.name: sgd (it is {optimizer.name}): "
            "remove momentum or switch the optimizer"
        )


class RunConfig(_Strict):
    """What every run has: seed, output folder, data, model, training settings and task.

    Each verb has its own type below; a section another verb reads (``distill`` for
    ``kdistill train``) is refused by name instead of silently ignored.
    """

    seed: int = 0
    output_dir: str = "runs/run"
    task: str = "classification"
    """What the data, models and metrics are (see ``kdistill.tasks``)."""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _check_transfer_set(self) -> RunConfig:
        if self.data.keep_classes is not None and not self.data.keep_classes:
            raise ValueError(
                "data.keep_classes is empty: list at least one class or remove the key"
            )
        return self


class TrainRunConfig(RunConfig):
    """``kdistill train``: one model on the labels (or a GAN, with ``task: generation``)."""

    gan: GanConfig | None = None

    @model_validator(mode="after")
    def _gan_for_generation(self) -> TrainRunConfig:
        _check_gan(self, self.gan)
        return self


class DistillRunConfig(RunConfig):
    """``kdistill distill``: a student (``model``) from teachers (``distill``)."""

    distill: DistillConfig
    gan: GanConfig | None = None
    """With ``task: generation``: the student generator's adversarial side (GAN Compression)."""

    @model_validator(mode="after")
    def _gan_for_generation(self) -> DistillRunConfig:
        _check_gan(self, self.gan)
        if self.distill.holistic is not None and self.task != "segmentation":
            raise ValueError("distill.holistic needs task: segmentation (or remove it)")
        if self.distill.holistic is not None and self.distill.cache_teacher_logits == "always":
            raise ValueError(
                "distill.holistic reads the live teacher's maps: set "
                "distill.cache_teacher_logits to auto or never"
            )
        if self.distill.holistic is not None:
            _check_group(
                self.distill.holistic.discriminator_optimizer,
                self.train.optimizer,
                "distill.holistic",
            )
        return self


class BornAgainRunConfig(RunConfig):
    """``kdistill born-again``."""

    born_again: BornAgainConfig = Field(default_factory=BornAgainConfig)


class MutualRunConfig(RunConfig):
    """``kdistill mutual``."""

    mutual: MutualConfig


class NetAugRunConfig(RunConfig):
    """``kdistill netaug``: the base model ``model`` trained with network augmentation."""

    netaug: NetAugConfig = Field(default_factory=NetAugConfig)


VERB_SECTIONS: dict[str, tuple[str, type[RunConfig]]] = {
    "distill": ("distill", DistillRunConfig),
    "netaug": ("netaug", NetAugRunConfig),
    "born_again": ("born-again", BornAgainRunConfig),
    "mutual": ("mutual", MutualRunConfig),
}
"""Top-level section -> (the verb that reads it, its config type)."""


def config_type_for(raw: dict[str, Any]) -> type[RunConfig]:
    """The config type of a raw config by the verb section it has (train when none)."""
    present = [section for section in VERB_SECTIONS if section in raw]
    if len(present) > 1:
        raise KDistillError(
            f"config has sections {', '.join(present)} of different verbs: keep one"
        )
    return VERB_SECTIONS[present[0]][1] if present else TrainRunConfig
