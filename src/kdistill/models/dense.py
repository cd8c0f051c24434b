"""Small encoder-decoders for dense tasks on canvases (segmentation; the detector's backbone).

An encoder of stride-2 stages and a feature-pyramid decoder (1x1 lateral convolutions, upsample
and add, a 3x3 convolution), ending in a 1x1 head at the input's resolution. The teacher and
the student are the same family at different widths: ``channels`` fixes the encoder's widths
and ``decoder_channels`` the decoder's, so a 4x narrower model has about 16x fewer parameters
and multiply-accumulates.

Module paths (for loss terms that read features): ``stem`` (stride 1), ``stages.0..2``
(strides 2, 4, 8), ``decode8``, ``decode4``, ``decode2`` (the decoder's fused maps at strides
8, 4, 2) and ``head`` (the logits at stride 2, before upsampling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.errors import KDistillError
from kdistill.models.registry import register_model

__all__ = ["EncoderDecoder", "GridDetector", "detnet", "segnet"]


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
