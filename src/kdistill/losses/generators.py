"""Losses that match a teacher generator: GAN Compression's distillation terms.

Li, Lin, Ding, Liu, Zhu, Han, "GAN Compression: Efficient Architectures for Interactive
Conditional GANs", CVPR 2020, section 3.1:

* reconstruction (eq. 2, the unpaired setting): ``L_recon = E ||G(x) - G'(x)||_1``, the
  student's output against the teacher's for the same input (here the same noise and class);
* distillation (eq. 3): ``L_distill = sum_t ||G_t(x) - f_t(G'_t(x))||_2``, teacher activations
  ``G_t`` against the student's ``G'_t`` mapped to the teacher's channels by a learnable 1x1
  convolution ``f_t``; the paper's code takes the mean squared error per layer.

Both are :class:`~kdistill.losses.base.LossTerm`\\ s: the GAN distiller puts the student's
images in ``context.student_logits`` and the teacher's in ``context.teacher_member_logits``
(one member), and captures the layers a feature term ``reads()`` by module path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm, TermContext, register_term
from kdistill.losses.feature_terms import AdaptedFeaturePair


def reconstruction_loss(student_images: torch.Tensor, teacher_images: torch.Tensor) -> torch.Tensor:
    """GAN Compression eq. 2: the mean absolute difference of the two generators' outputs."""
    if student_images.shape != teacher_images.shape:
        raise KDistillError(
            f"reconstruction: student output {tuple(student_images.shape)} and teacher output "
            f"{tuple(teacher_images.shape)} differ in shape: the generators must make images "
            "of the same size"
        )
    return (student_images - teacher_images.detach()).abs().mean()


@register_term
class ReconstructionLoss(LossTerm):
    """L1 between the student generator's image and the teacher's for the same noise and
    class (GAN Compression eq. 2)."""

    name = "reconstruction"
    needs_live_teacher = True

    def forward(self, context: TermContext) -> torch.Tensor:
        teacher = context.teacher_logits
        if teacher is None:
            raise KDistillError(
                "the 'reconstruction' term needs a teacher generator: add distill.teachers"
            )
        return reconstruction_loss(context.student_logits, teacher)


@register_term
class GeneratorFeatureLoss(AdaptedFeaturePair):
    """MSE between a teacher layer's activations and a student layer's mapped to the teacher's
    channels by a learnable 1x1 convolution (GAN Compression eq. 3, one layer pair; list one
    term per pair). ``student`` and ``teacher`` are module paths (e.g. ``blocks.0``); the
    convolution belongs to the term (trained with the student, never exported)."""

    name = "generator_features"

    def forward(self, context: TermContext) -> torch.Tensor:
        mapped, teacher = self.adapted_features(context)
        return F.mse_loss(mapped, teacher)
