"""Adversarial losses of a GAN, as plain functions of the discriminator's scores (logits).

* ``non-saturating`` -- Goodfellow et al., NeurIPS 2014, section 3: the discriminator
  minimises ``-log sigma(D(x)) - log(1 - sigma(D(G(z))))``; the generator minimises
  ``-log sigma(D(G(z)))`` instead of ``log(1 - sigma(D(G(z))))``, whose gradient vanishes when
  the discriminator wins. Written with softplus: ``-log sigma(s) = softplus(-s)``.
* ``hinge`` -- Lim & Ye 2017, Miyato et al. ICLR 2018 (eq. 16-17 of "cGANs with Projection
  Discriminator"): ``D: relu(1 - D(x)) + relu(1 + D(G(z)))``, ``G: -D(G(z))``.
* ``wasserstein`` -- Arjovsky et al., ICML 2017, eq. 3: the critic minimises
  ``D(G(z)) - D(x)`` (the negated estimate of the Wasserstein-1 distance), the generator
  ``-D(G(z))``; the critic is kept 1-Lipschitz by :func:`gradient_penalty` (Gulrajani et
  al., NeurIPS 2017, "Improved Training of Wasserstein GANs", eq. 3, WGAN-GP). Liu et al.'s
  holistic distillation (CVPR 2019, eq. 3) is this loss on segmentation maps.

Each is a batch mean. They are not loss terms (:class:`~kdistill.losses.base.LossTerm`): they
need the discriminator, which the GAN objective (:mod:`kdistill.methods.gan`) owns.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError

ADVERSARIAL_LOSSES = ("non-saturating", "hinge", "wasserstein")


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
    if kind == "wasserstein":
        return fake_scores.mean() - real_scores.mean()
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def generator_loss(fake_scores: torch.Tensor, kind: str = "non-saturating") -> torch.Tensor:
    """The generator's loss on the discriminator's scores of its images (``[B]``)."""
    _check(kind)
    if kind in ("hinge", "wasserstein"):
        return -fake_scores.mean()
    return F.softplus(-fake_scores).mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    mixing: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017, eq. 3): ``E[(||grad_x D(x_hat)||_2 - 1)^2]``
    at ``x_hat = eps x + (1 - eps) x~`` between real and generated samples, ``eps ~ U[0, 1]``
    per example (``mixing`` ``[B]`` gives them; default: drawn on the CPU from torch's global
    generator, which checkpoints save). The norm is over every element of an example.

    ``real`` and ``fake`` are detached here, so the penalty moves only the critic; the input
    gradient is taken with ``create_graph=True`` so the penalty can itself be differentiated
    with respect to the critic's parameters. Gradients are enabled inside, so a forward pass
    under ``torch.no_grad`` (the engine's dry run) still computes it.
    """
    real, fake = real.detach(), fake.detach()
    if mixing is None:
        mixing = torch.rand(real.shape[0], dtype=real.dtype).to(real.device)
    mixing = mixing.reshape(-1, *([1] * (real.dim() - 1)))
    with torch.enable_grad():
        mixed = (mixing * real + (1 - mixing) * fake).requires_grad_(True)
        (gradient,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
        return (gradient.flatten(1).norm(dim=1) - 1).pow(2).mean()
