"""Adversarial losses of a GAN, as plain functions of the discriminator's scores (logits).

* ``non-saturating`` -- Goodfellow et al., NeurIPS 2014, section 3: the discriminator
  minimises ``-log sigma(D(x)) - log(1 - sigma(D(G(z))))``; the generator minimises
  ``-log sigma(D(G(z)))`` instead of ``log(1 - sigma(D(G(z))))``, whose gradient vanishes when
  the discriminator wins. Written with softplus: ``-log sigma(s) = softplus(-s)``.
* ``hinge`` -- Lim & Ye 2017, Miyato et al. ICLR 2018 (eq. 16-17 of "cGANs with Projection
  Discriminator"): ``D: relu(1 - D(x)) + relu(1 + D(G(z)))``, ``G: -D(G(z))``.

Each is a batch mean. They are not loss terms (:class:`~kdistill.losses.base.LossTerm`): they
need the discriminator, which the GAN objective (:mod:`kdistill.methods.gan`) owns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError

ADVERSARIAL_LOSSES = ("non-saturating", "hinge")


def _check(kind: str) -> None:
    if kind not in ADVERSARIAL_LOSSES:
        raise KDistillError(
            f"unknown adversarial loss {kind!r}: set gan.loss to one of "
            f"{', '.join(ADVERSARIAL_LOSSES)}"
        )


def discriminator_loss(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, kind: str = "non-saturating"
) -> torch.Tensor:
    """The discriminator's loss on scores of real and of generated images (both ``[B]``)."""
    _check(kind)
    if kind == "hinge":
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def generator_loss(fake_scores: torch.Tensor, kind: str = "non-saturating") -> torch.Tensor:
    """The generator's loss on the discriminator's scores of its images (``[B]``)."""
    _check(kind)
    if kind == "hinge":
        return -fake_scores.mean()
    return F.softplus(-fake_scores).mean()
