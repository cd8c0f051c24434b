"""Class-conditional DCGAN-style generator and discriminator for 28x28 images.

The generator follows DCGAN (Radford et al., ICLR 2016): a projection of the noise to a
``7x7`` map, then transposed convolutions (stride 2) with batch norm and ReLU up to ``28x28``.
The class enters as a learned embedding concatenated to the noise. ``channels`` is the width
of the last block; blocks before it are 2x and 4x that, so a generator with ``channels / 4``
is the GAN Compression student (Li et al., CVPR 2020, section 3) with ~1/16 of the MACs of
the convolutions.

The discriminator is conditioned by projection (Miyato & Koyama, ICLR 2018, eq. 3):
``D(x, y) = psi(h(x)) + embed(y) . h(x)``. It has no batch norm, so the generator loss can be
computed through it with its parameters frozen (:mod:`kdistill.methods.gan`) without moving
any statistics.

Module paths (for feature distillation): ``project`` (``[B, 4c, 7, 7]``), ``blocks.0``
(``[B, 2c, 14, 14]``), ``blocks.1`` (``[B, c, 28, 28]``), ``head`` (the image).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdistill.models.registry import register_model

__all__ = ["ConditionalDiscriminator", "ConditionalGenerator", "count_macs"]


class _Reshape(nn.Module):
    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.view(inputs.shape[0], *self.shape)


class ConditionalGenerator(nn.Module):
    """``G(noise [B, noise_size], labels [B]) -> images [B, out_channels, 28, 28]`` in [0, 1]
    (a sigmoid: the data's default encoding is pixels / 255)."""

    def __init__(
        self,
        channels: int = 32,
        noise_size: int = 32,
        num_classes: int = 10,
        embedding_size: int = 16,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        self.noise_size = noise_size
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, embedding_size)
        self.project = nn.Sequential(
            nn.Linear(noise_size + embedding_size, 4 * channels * 7 * 7, bias=False),
            _Reshape(4 * channels, 7, 7),
            nn.BatchNorm2d(4 * channels),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(
            _up(4 * channels, 2 * channels),  # 7 -> 14
            _up(2 * channels, channels),  # 14 -> 28
        )
        self.head = nn.Sequential(
            nn.Conv2d(channels, out_channels, kernel_size=3, padding=1), nn.Sigmoid()
        )

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        code = torch.cat([noise, self.embed(labels)], dim=1)
        return self.head(self.blocks(self.project(code)))


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class ConditionalDiscriminator(nn.Module):
    """``D(images [B, C, 28, 28], labels [B]) -> scores [B]`` (a logit: real > 0)."""

    def __init__(self, channels: int = 32, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 4, stride=2, padding=1),  # 28 -> 14
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),  # 14 -> 7
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        width = 2 * channels * 7 * 7
        self.score = nn.Linear(width, 1)
        self.embed = nn.Embedding(num_classes, width)
        nn.init.normal_(self.embed.weight, std=0.01)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = self.features(images)
        return self.score(hidden).squeeze(1) + (self.embed(labels) * hidden).sum(dim=1)


@register_model("cgan-generator")
def cgan_generator(**kwargs) -> ConditionalGenerator:
    return ConditionalGenerator(**kwargs)


@register_model("cgan-discriminator")
def cgan_discriminator(**kwargs) -> ConditionalDiscriminator:
    return ConditionalDiscriminator(**kwargs)


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``inputs`` (PyTorch's FLOP counter, which
    counts 2 FLOPs per MAC for matrix products and convolutions; element-wise work such as
    batch norm and activations is not counted, as in the GAN Compression paper's MACs)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    model.train(was_training)
    return counter.get_total_flops() // 2
