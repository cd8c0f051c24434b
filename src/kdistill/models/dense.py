"""Small encoder-decoders for dense tasks on canvases (segmentation; the detector's backbone).

An encoder of stride-2 stages and a feature-pyramid decoder (1x1 lateral convolutions, upsample
and add, a 3x3 convolution), ending in a 1x1 head at the input's resolution. The teacher and
the student are the same family at different widths: ``channels`` fixes the encoder's widths
and ``decoder_channels`` the decoder's, so a 4x narrower model has about 16x fewer parameters
and multiply-accumulates.

Module paths (for loss terms that read features): ``stem`` (stride 1), ``stages.0..2``
(strides 2, 4, 8), ``decode8``, ``decode4``, ``decode2`` (the decoder's fused maps at strides
8, 4, 2) and ``head`` (the logits at stride 2, before upsampling).

``seg-discriminator`` is the holistic term's critic (Liu et al., CVPR 2019, section 3.1): it
scores a segmentation map together with its image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.errors import KDistillError
from kdistill.models.registry import register_model

__all__ = [
    "EncoderDecoder",
    "GridDetector",
    "SegmentationDiscriminator",
    "SelfAttention",
    "detnet",
    "segnet",
    "seg_discriminator",
]


def _conv(inputs: int, outputs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class EncoderDecoder(nn.Module):
    """``[B, in_channels, H, W]`` -> logits ``[B, num_classes, H, W]`` (H and W divisible by 8)."""

    def __init__(
        self,
        channels: tuple[int, ...] | list[int] = (16, 32, 64, 128),
        decoder_channels: int = 64,
        num_classes: int = 21,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if len(channels) != 4:
            raise KDistillError(
                f"model.kwargs.channels must list 4 widths (stem and strides 2, 4, 8), got {list(channels)}"
            )
        self.stem = _conv(in_channels, channels[0])
        self.stages = nn.ModuleList(
            nn.Sequential(
                _conv(channels[i], channels[i + 1], stride=2),
                _conv(channels[i + 1], channels[i + 1]),
            )
            for i in range(3)
        )
        width = decoder_channels
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels[1:])
        self.decode8 = _conv(width, width)
        self.decode4 = _conv(width, width)
        self.decode2 = _conv(width, width)
        self.head = nn.Conv2d(width, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        maps = [self.stem(inputs)]
        for stage in self.stages:
            maps.append(stage(maps[-1]))
        top = self.decode8(self.laterals[2](maps[3]))
        for lateral, decode, skip in zip(
            self.laterals[1::-1], (self.decode4, self.decode2), maps[2:0:-1], strict=True
        ):
            top = decode(lateral(skip) + F.interpolate(top, size=skip.shape[-2:], mode="nearest"))
        logits = self.head(top)
        return F.interpolate(logits, size=inputs.shape[-2:], mode="bilinear", align_corners=False)


class GridDetector(nn.Module):
    """A one-stage, anchor-free detector on a stride-4 grid (FCOS-style, Tian et al. 2019):
    the encoder and the decoder down to ``decode4`` of :class:`EncoderDecoder`, then a 3x3
    convolution and one 1x1 head giving, per cell, ``num_classes + 1`` class logits
    (index 0 = background) and 4 box offsets, as one map ``[B, num_classes + 5, H/4, W/4]``
    (:func:`kdistill.losses.detection.split_outputs` separates them).

    Module paths: ``backbone.stem``, ``backbone.stages.0..2``, ``backbone.decode8``,
    ``backbone.decode4`` (stride 4), ``tower`` (stride 4), ``head``.
    """

    stride = 4

    def __init__(
        self,
        channels: tuple[int, ...] | list[int] = (16, 32, 64, 128),
        decoder_channels: int = 64,
        num_classes: int = 20,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        self.backbone = EncoderDecoder(channels, decoder_channels, num_classes, in_channels)
        del self.backbone.decode2, self.backbone.head  # the detector stops at stride 4
        self.tower = _conv(decoder_channels, decoder_channels)
        self.head = nn.Conv2d(decoder_channels, num_classes + 1 + 4, 1)
        self.num_classes = num_classes

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        backbone = self.backbone
        maps = [backbone.stem(inputs)]
        for stage in backbone.stages:
            maps.append(stage(maps[-1]))
        top = backbone.decode8(backbone.laterals[2](maps[3]))
        skip = backbone.laterals[1](maps[2])
        top = backbone.decode4(skip + F.interpolate(top, size=skip.shape[-2:], mode="nearest"))
        return self.head(self.tower(top))


@register_model("detnet")
def detnet(**kwargs) -> GridDetector:
    """Grid detector; e.g. teacher ``channels=[16, 32, 64, 128], decoder_channels=64``,
    student ``channels=[4, 8, 16, 32], decoder_channels=16``."""
    return GridDetector(**kwargs)


@register_model("segnet")
def segnet(**kwargs) -> EncoderDecoder:
    """Segmentation encoder-decoder; e.g. teacher ``channels=[16, 32, 64, 128],
    decoder_channels=64``, student ``channels=[4, 8, 16, 32], decoder_channels=16``."""
    return EncoderDecoder(**kwargs)


class SelfAttention(nn.Module):
    """SAGAN's self-attention block (Zhang et al., ICML 2019, eq. 1-3): every position attends
    to every other through 1x1 query, key (``C/8`` channels) and value convolutions; the
    result is added back scaled by ``gamma``, which starts at 0 (the block starts as the
    identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = inputs.shape
        query = self.query(inputs).flatten(2).transpose(1, 2)  # [B, N, C']
        key = self.key(inputs).flatten(2)  # [B, C', N]
        attention = torch.softmax(query @ key, dim=-1)  # [B, N, N], rows sum to 1
        value = self.value(inputs).flatten(2)  # [B, C, N]
        attended = (value @ attention.transpose(1, 2)).reshape(batch, channels, height, width)
        return inputs + self.gamma * attended


class SegmentationDiscriminator(nn.Module):
    """``D(maps [B, num_classes, H, W], images [B, in_channels, H, W]) -> scores [B]``: Liu et
    al.'s embedding network for holistic distillation (CVPR 2019, section 3.1), fully
    convolutional with five convolutions on the concatenated map and image and self-attention
    between the final three layers. Four 4x4 stride-2 convolutions (``channels`` doubling
    each time, LeakyReLU 0.2) and a 3x3 convolution to one channel, averaged over positions.

    No normalisation layers: the WGAN-GP penalty is taken per example, which batch norm would
    couple across the batch (Gulrajani et al. 2017, section 4)."""

    def __init__(self, num_classes: int = 21, in_channels: int = 1, channels: int = 8) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        widths = [num_classes + in_channels] + [channels * 2**i for i in range(4)]
        layers: list[nn.Module] = []
        for index in range(4):
            layers += [nn.Conv2d(widths[index], widths[index + 1], 4, 2, 1), nn.LeakyReLU(0.2)]
            if index >= 2:  # after the third and the fourth convolution
                layers.append(SelfAttention(widths[index + 1]))
        layers.append(nn.Conv2d(widths[-1], 1, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, maps: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        if maps.shape[1] != self.num_classes or images.shape[1] != self.in_channels:
            raise KDistillError(
                f"seg-discriminator was built for {self.num_classes}-class maps of "
                f"{self.in_channels}-channel images, got {maps.shape[1]} classes and "
                f"{images.shape[1]} channels: set its kwargs num_classes and in_channels"
            )
        return self.layers(torch.cat([maps, images], dim=1)).mean(dim=(1, 2, 3))


@register_model("seg-discriminator")
def seg_discriminator(**kwargs) -> SegmentationDiscriminator:
    """The holistic term's critic; ``num_classes`` and ``in_channels`` must match the
    segmenters' classes and the images' channels."""
    return SegmentationDiscriminator(**kwargs)
