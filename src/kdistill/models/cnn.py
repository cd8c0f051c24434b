"""Small convolutional networks for 28x28 images (MNIST, Fashion-MNIST)."""

from __future__ import annotations

import torch
from torch import nn

from kdistill.models.registry import register_model


class SmallCNN(nn.Module):
    """Two or more conv blocks (conv3x3 -> BN -> ReLU -> maxpool) then a linear classifier.

    Module paths: ``features.<i>`` for the blocks' layers, ``classifier`` for the head;
    ``features`` ends in a ``[B, C, 7, 7]`` map for two blocks on 28x28 inputs. The head
    reads that map averaged over positions (``global_pool=True``, few parameters) or
    flattened (``global_pool=False``: it keeps where each feature is, which a two-block net
    with small receptive fields needs to be a strong MNIST teacher).
    """

    def __init__(
        self,
        channels: tuple[int, ...] | list[int] = (32, 64),
        num_classes: int = 10,
        in_channels: int = 1,
        hidden_size: int = 0,
        dropout: float = 0.0,
        global_pool: bool = True,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()
        head: list[nn.Module] = [nn.Flatten()]
        if not global_pool:
            map_size = image_size // 2 ** len(channels)
            previous = previous * map_size * map_size
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        if hidden_size > 0:
            head += [
                nn.Linear(previous, hidden_size),
                nn.ReLU(),
                nn.Linear(hidden_size, num_classes),
            ]
        else:
            head.append(nn.Linear(previous, num_classes))
        self.classifier = nn.Sequential(*head)
        self.num_classes = num_classes

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(inputs)))


@register_model("cnn")
def cnn(**kwargs) -> SmallCNN:
    return SmallCNN(**kwargs)
