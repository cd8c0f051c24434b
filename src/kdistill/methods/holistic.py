"""Holistic distillation for semantic segmentation, on the one engine.

Liu et al., "Structured Knowledge Distillation for Semantic Segmentation", CVPR 2019, section
3.1: the student is a generator conditioned on the image ``I``, its soft segmentation map
``Q^s`` the fake sample and the teacher's ``Q^t`` the real one. An embedding network
``D(Q | I)`` (the discriminator, :class:`~kdistill.models.dense.SegmentationDiscriminator`)
scores a map with its image, and eq. 3 is the Wasserstein distance between the two::

    l_ho = E[D(Q^s | I)] - E[D(Q^t | I)]

The student minimises ``-lambda l_ho`` (eq. 4, the paper's lambda = 0.1), i.e. the
generator loss ``-lambda E[D(Q^s | I)]``; the discriminator minimises ``l_ho`` plus WGAN-GP's
gradient penalty (Gulrajani et al., NeurIPS 2017, eq. 3, weight 10) that keeps it 1-Lipschitz.

Both players are trained by the engine's one optimizer and one backward pass, exactly as GAN
Compression's (:func:`kdistill.methods.gan.adversarial_losses`): the discriminator's loss
reads the maps detached and the student's reads the discriminator frozen, so each loss moves
only its own player. The discriminator may have its own optimizer settings
(``distill.holistic.discriminator_optimizer``: a parameter group of the one optimizer), as
WGAN-GP's critic is usually trained at a smaller learning rate with Adam betas (0.5, 0.9)
(Gulrajani et al., Algorithm 1): on the student's lr 0.003 its gradient penalty diverges. The discriminator is part of the objective, so every checkpoint saves it
and ``--resume`` restores it (and its optimizer moments).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from kdistill.config import DistillRunConfig, HolisticConfig, ParameterGroupConfig
from kdistill.data import Batch, TrainingData
from kdistill.engine.objective import ObjectiveOutput
from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm, TermContext
from kdistill.methods.common import build_model, derived_seed
from kdistill.methods.distill import Distiller
from kdistill.methods.gan import adversarial_losses
from kdistill.teachers import Teacher

__all__ = ["HolisticDistiller", "check_discriminator", "holistic_objective", "soft_map"]


def soft_map(member_logits: torch.Tensor) -> torch.Tensor:
    """The teacher's segmentation map ``Q^t`` ``[B, C, H, W]``: each pixel's class
    probabilities, averaged over an ensemble's members (``member_logits`` ``[M, B, C, H, W]``)."""
    return member_logits.softmax(dim=2).mean(dim=0)


class HolisticDistiller(Distiller):
    """The :class:`~kdistill.methods.distill.Distiller` (the student, the teacher, the
    pixel-wise, pair-wise and label terms) plus the holistic adversarial term: losses
    ``discriminator`` (``l_ho``), ``gradient_penalty`` and ``holistic``
    (``-weight E[D(Q^s | I)]``) beside the terms' own."""

    def __init__(
        self,
        student: nn.Module,
        teacher: Teacher,
        terms: Sequence[LossTerm],
        discriminator: nn.Module,
        weight: float = 0.1,
        penalty_weight: float = 10.0,
        loss: str = "wasserstein",
        discriminator_optimizer: ParameterGroupConfig | None = None,
        **distiller_options: Any,
    ) -> None:
        if distiller_options.get("cached_teacher_logits") is not None:
            raise KDistillError(
                "the holistic term reads the live teacher's maps: set "
                "distill.cache_teacher_logits=never"
            )
        super().__init__(student, teacher, terms, **distiller_options)
        self.discriminator = discriminator
        self.weight = weight
        self.penalty_weight = penalty_weight
        self.loss = loss
        if discriminator_optimizer is not None:
            self.group_settings = {"discriminator": discriminator_optimizer}
        # The teacher's map is the real sample, whether or not a term reads its logits.
        self._reads_teacher_logits = True

    def forward(self, batch: Batch) -> ObjectiveOutput:
        context = self.term_context(batch)
        losses = self.term_losses(context)
        losses.update(self.holistic_losses(context))
        return ObjectiveOutput(losses, context.student_logits)

    def holistic_losses(self, context: TermContext) -> dict[str, torch.Tensor]:
        """The discriminator's Wasserstein loss and gradient penalty on (teacher map, image)
        versus (student map, image), and the student's weighted adversarial loss."""
        assert context.teacher_member_logits is not None  # _reads_teacher_logits is set
        losses, _ = adversarial_losses(
            self.discriminator,
            soft_map(context.teacher_member_logits),
            context.student_logits.softmax(dim=1),
            context.inputs,
            self.loss,
            self.weight,
            self.penalty_weight,
        )
        if "adversarial" in losses:
            losses["holistic"] = losses.pop("adversarial")
        return losses


def check_discriminator(
    discriminator: nn.Module, classes: int, image: torch.Tensor, key: str
) -> None:
    """Score one uniform ``classes``-class map with one ``image`` ``[1, C, H, W]``: a
    discriminator that rejects it, or returns anything but one score, gets a one-line error
    naming the config ``key`` and the keyword arguments that fit."""
    maps = torch.full((1, classes, *image.shape[-2:]), 1.0 / classes)
    fix = f"set {key}.kwargs to {{num_classes: {classes}, in_channels: {image.shape[1]}}}"
    try:
        with torch.no_grad():
            scores = discriminator(maps, image)
    except (RuntimeError, ValueError, KDistillError) as error:
        text = str(error).strip()
        first_line = text.splitlines()[0] if text else ""
        raise KDistillError(
            f"{key} ({type(discriminator).__name__}) rejects a {classes}-class map "
            f"{list(maps.shape)} with a {image.shape[1]}-channel image ({first_line}): {fix}"
        ) from None
    if not isinstance(scores, torch.Tensor) or scores.shape != (1,):
        shape = list(scores.shape) if isinstance(scores, torch.Tensor) else type(scores)
        raise KDistillError(
            f"{key} ({type(discriminator).__name__}) returned {shape} for one (map, image) "
            "pair; a discriminator must return one score per example, [batch]"
        )


def holistic_objective(
    config: DistillRunConfig, data: TrainingData, classes: int
) -> Callable[..., HolisticDistiller]:
    """What :func:`~kdistill.methods.distill.distill` builds instead of a plain
    :class:`Distiller` when ``distill.holistic`` is set: a fresh discriminator (its weights
    drawn from a seed derived from the run's), checked on one training image."""
    holistic: HolisticConfig | None = config.distill.holistic
    assert holistic is not None
    discriminator = build_model(holistic.discriminator, derived_seed(config.seed, "discriminator"))
    check_discriminator(
        discriminator, classes, data.train.encoded(0, 1), "distill.holistic.discriminator"
    )
    return partial(
        HolisticDistiller,
        discriminator=discriminator,
        weight=holistic.weight,
        penalty_weight=holistic.gradient_penalty,
        loss=holistic.loss,
        discriminator_optimizer=holistic.discriminator_optimizer,
    )
