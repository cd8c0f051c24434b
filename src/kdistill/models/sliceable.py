"""Width-sliceable MLP and small CNN: one set of weight tensors, many widths.

Network Augmentation (Cai et al., "Network Augmentation for Tiny Deep Learning", ICLR 2022,
section 3) trains a tiny model inside wider copies of itself that share its weights. Here a
sliceable model holds every layer at its largest width (the base width times
``max_width_multiplier``); a forward pass at widths ``[w_1, ..., w_L]`` uses the first ``w_i``
output channels of layer ``i`` (and the first ``w_{i-1}`` input channels), so **the base model
is the first channels of every layer** and a wider model is the base plus more channels. The
slices are views of the same tensors: a gradient through a wider model reaches the base's
weights too.

``forward(x)`` is the base model (batch norm as usual: batch statistics in training, running
statistics in evaluation, running statistics updated in training). ``forward(x, widths)`` is
an augmented model: its batch norm always uses the batch's statistics and never updates the
running ones, so the base's running statistics hold the base alone (they are re-estimated at
the end of training anyway, as the paper does). :meth:`export_base` copies the base out as the
plain :class:`~kdistill.models.MLP` or :class:`~kdistill.models.SmallCNN` it started from.

:meth:`sort_channels` reorders every hidden layer's channels by the L1 norm of their incoming
weights, largest first, and applies the same permutation to the next layer's inputs: the
widest model computes the same function, and the base now holds the most important channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.errors import KDistillError
from kdistill.models.cnn import SmallCNN
from kdistill.models.mlp import MLP
from kdistill.models.registry import register_model

__all__ = [
    "SliceableCNN",
    "SliceableMLP",
    "SliceableModel",
    "make_sliceable",
    "widest",
]

Permute = Callable[[torch.Tensor, torch.Tensor, int], None]
"""``permute(parameter_or_buffer, order, dim)``: reorder a tensor in place along ``dim``."""


def widest(base: int, multiplier: float) -> int:
    """The width of a layer of ``base`` channels at ``multiplier`` (rounded up, at least base)."""
    return max(base, math.ceil(base * multiplier - 1e-9))


def _permute_in_place(tensor: torch.Tensor, order: torch.Tensor, dim: int) -> None:
    with torch.no_grad():
        tensor.copy_(tensor.index_select(dim, order))


class SliceableModel(nn.Module):
    """What NetAug needs of a model: base widths, largest widths, a forward at any widths,
    channel sorting and the export of the base."""

    base_widths: list[int]
    max_widths: list[int]

    def widths_at(self, multipliers: Sequence[float]) -> list[int]:
        """The widths of the model whose hidden layer ``i`` is ``multipliers[i]`` x its base."""
        if len(multipliers) != len(self.base_widths):
            raise KDistillError(
                f"{len(multipliers)} width multipliers for {len(self.base_widths)} hidden layers"
            )
        widths = [widest(b, m) for b, m in zip(self.base_widths, multipliers, strict=True)]
        for width, largest in zip(widths, self.max_widths, strict=True):
            if width > largest:
                raise KDistillError(
                    f"width {width} exceeds the model's largest width {largest}: build it with "
                    "a larger max_width_multiplier"
                )
        return widths

    def forward(self, inputs: torch.Tensor, widths: Sequence[int] | None = None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def sort_channels(self, permute: Permute = _permute_in_place) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def export_base(self) -> nn.Module:
        raise NotImplementedError  # pragma: no cover - abstract

    def base_recipe(self) -> dict:
        """How to rebuild the exported base (``{"name": "mlp", "kwargs": {...}}``)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def base_batch_norms(self) -> list[nn.BatchNorm2d]:
        """The batch-norm layers whose running statistics the base uses (none for an MLP)."""
        return []


def _importance(weight: torch.Tensor) -> torch.Tensor:
    """L1 norm of each output channel's incoming weights."""
    return weight.detach().abs().flatten(1).sum(dim=1)


class SliceableMLP(SliceableModel):
    """An :class:`~kdistill.models.MLP` (ReLU hidden layers, no dropout or max-norm) whose
    hidden layers are stored ``max_width_multiplier`` times wider.

    Built from a plain MLP (:meth:`from_base`), its first channels are that MLP's weights
    exactly; the extra channels get PyTorch's default initialisation for the wide layers.
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (30, 30),
        num_classes: int = 10,
        input_size: int = 784,
        max_width_multiplier: float = 2.6,
    ) -> None:
        super().__init__()
        if not hidden_sizes:
            raise KDistillError("a sliceable MLP needs at least one hidden layer")
        self.base_widths = [int(size) for size in hidden_sizes]
        self.max_widths = [widest(size, max_width_multiplier) for size in self.base_widths]
        self.max_width_multiplier = float(max_width_multiplier)
        self.num_classes = num_classes
        self.input_size = input_size
        sizes = [input_size, *self.max_widths]
        self.hidden = nn.ModuleList(
            nn.Linear(fan_in, fan_out) for fan_in, fan_out in zip(sizes, sizes[1:], strict=False)
        )
        self.head = nn.Linear(sizes[-1], num_classes)

    def linears(self) -> list[nn.Linear]:
        """The hidden layers then the head, at their largest widths."""
        return [*(m for m in self.hidden if isinstance(m, nn.Linear)), self.head]

    @classmethod
    def from_base(cls, base: MLP, max_width_multiplier: float) -> SliceableMLP:
        linears = [module for module in base.layers if isinstance(module, nn.Linear)]
        if any(isinstance(module, nn.Dropout) for module in base.layers) or base.max_norm:
            raise KDistillError(
                "NetAug's sliceable MLP has no dropout or max-norm: remove hidden_dropout, "
                "input_dropout and max_norm from model.kwargs"
            )
        model = cls(
            [layer.out_features for layer in linears[:-1]],
            num_classes=linears[-1].out_features,
            input_size=linears[0].in_features,
            max_width_multiplier=max_width_multiplier,
        )
        with torch.no_grad():
            for wide, plain in zip(model.linears(), linears, strict=True):
                out_features, in_features = plain.weight.shape
                wide.weight[:out_features, :in_features] = plain.weight
                wide.bias[:out_features] = plain.bias
        return model

    def forward(self, inputs: torch.Tensor, widths: Sequence[int] | None = None) -> torch.Tensor:
        widths = self.base_widths if widths is None else list(widths)
        hidden = inputs.flatten(1)
        fan_in = self.input_size
        for layer, width in zip(self.linears()[:-1], widths, strict=True):
            hidden = F.relu(F.linear(hidden, layer.weight[:width, :fan_in], layer.bias[:width]))
            fan_in = width
        return F.linear(hidden, self.head.weight[:, :fan_in], self.head.bias)

    def sort_channels(self, permute: Permute = _permute_in_place) -> None:
        layers = self.linears()
        for layer, following in zip(layers, layers[1:], strict=False):
            order = torch.argsort(_importance(layer.weight), descending=True, stable=True)
            permute(layer.weight, order, 0)
            permute(layer.bias, order, 0)
            permute(following.weight, order, 1)

    def export_base(self) -> MLP:
        base = MLP(self.base_widths, self.num_classes, self.input_size)
        plain = [module for module in base.layers if isinstance(module, nn.Linear)]
        fan_ins = [self.input_size, *self.base_widths]
        fan_outs = [*self.base_widths, self.num_classes]
        with torch.no_grad():
            for wide, layer, fan_in, fan_out in zip(
                self.linears(), plain, fan_ins, fan_outs, strict=True
            ):
                layer.weight.copy_(wide.weight[:fan_out, :fan_in])
                layer.bias.copy_(wide.bias[:fan_out])
        return base.to(self.head.weight.device).train(self.training)

    def base_recipe(self) -> dict:
        return {
            "name": "mlp",
            "kwargs": {
                "hidden_sizes": self.base_widths,
                "num_classes": self.num_classes,
                "input_size": self.input_size,
            },
        }


class SliceableCNN(SliceableModel):
    """A :class:`~kdistill.models.SmallCNN` (conv3x3 -> BN -> ReLU -> maxpool blocks, then a
    linear head on the pooled or flattened map; no hidden head layer) stored wider."""

    def __init__(
        self,
        channels: Sequence[int] = (4, 8, 16),
        num_classes: int = 10,
        in_channels: int = 1,
        global_pool: bool = True,
        image_size: int = 28,
        dropout: float = 0.0,
        max_width_multiplier: float = 2.6,
    ) -> None:
        super().__init__()
        if not channels:
            raise KDistillError("a sliceable CNN needs at least one conv block")
        self.base_widths = [int(width) for width in channels]
        self.max_widths = [widest(width, max_width_multiplier) for width in self.base_widths]
        self.max_width_multiplier = float(max_width_multiplier)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.global_pool = global_pool
        self.image_size = image_size
        self.dropout = dropout
        self.positions = 1 if global_pool else (image_size // 2 ** len(channels)) ** 2
        sizes = [in_channels, *self.max_widths]
        self.convs = nn.ModuleList(
            nn.Conv2d(fan_in, fan_out, kernel_size=3, padding=1, bias=False)
            for fan_in, fan_out in zip(sizes, sizes[1:], strict=False)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(width) for width in self.max_widths)
        self.head = nn.Linear(self.max_widths[-1] * self.positions, num_classes)

    def blocks(self) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
        """Each block's convolution and batch norm, at their largest widths."""
        return [
            (conv, norm)
            for conv, norm in zip(self.convs, self.norms, strict=True)
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
        ]

    @classmethod
    def from_base(cls, base: SmallCNN, max_width_multiplier: float) -> SliceableCNN:
        convs = [m for m in base.features if isinstance(m, nn.Conv2d)]
        norms = [m for m in base.features if isinstance(m, nn.BatchNorm2d)]
        linears = [m for m in base.classifier if isinstance(m, nn.Linear)]
        dropouts = [m for m in base.classifier if isinstance(m, nn.Dropout)]
        if len(linears) != 1:
            raise KDistillError(
                "NetAug's sliceable CNN has a single linear head: set model.kwargs.hidden_size=0"
            )
        global_pool = isinstance(base.pool, nn.AdaptiveAvgPool2d)
        widths = [conv.out_channels for conv in convs]
        positions = linears[0].in_features // widths[-1]
        image_size = 28 if global_pool else math.isqrt(positions) * 2 ** len(widths)
        model = cls(
            widths,
            num_classes=linears[0].out_features,
            in_channels=convs[0].in_channels,
            global_pool=global_pool,
            image_size=image_size,
            dropout=dropouts[0].p if dropouts else 0.0,
            max_width_multiplier=max_width_multiplier,
        )
        with torch.no_grad():
            for (wide, wide_norm), plain, plain_norm in zip(
                model.blocks(), convs, norms, strict=True
            ):
                wide.weight[: plain.out_channels, : plain.in_channels] = plain.weight
                count = plain_norm.num_features
                wide_norm.weight[:count] = plain_norm.weight
                wide_norm.bias[:count] = plain_norm.bias
                assert wide_norm.running_mean is not None and plain_norm.running_mean is not None
                assert wide_norm.running_var is not None and plain_norm.running_var is not None
                wide_norm.running_mean[:count] = plain_norm.running_mean
                wide_norm.running_var[:count] = plain_norm.running_var
            model._head_view()[:, : widths[-1]] = linears[0].weight.reshape(
                linears[0].out_features, widths[-1], model.positions
            )
            model.head.bias.copy_(linears[0].bias)
        return model

    def _head_view(self) -> torch.Tensor:
        """The head's weight as ``[classes, channels, positions]`` (a view)."""
        return self.head.weight.view(self.num_classes, self.max_widths[-1], self.positions)

    def forward(self, inputs: torch.Tensor, widths: Sequence[int] | None = None) -> torch.Tensor:
        augmented = widths is not None
        widths = self.base_widths if widths is None else list(widths)
        hidden = inputs
        fan_in = self.in_channels
        for (conv, norm), width in zip(self.blocks(), widths, strict=True):
            hidden = F.conv2d(hidden, conv.weight[:width, :fan_in], padding=1)
            if augmented:  # batch statistics, running ones untouched
                hidden = F.batch_norm(
                    hidden, None, None, norm.weight[:width], norm.bias[:width], True, 0.0, norm.eps
                )
            else:
                assert norm.running_mean is not None and norm.running_var is not None
                hidden = F.batch_norm(
                    hidden,
                    norm.running_mean[:width],
                    norm.running_var[:width],
                    norm.weight[:width],
                    norm.bias[:width],
                    self.training,
                    float(norm.momentum) if norm.momentum is not None else 0.1,
                    norm.eps,
                )
                if self.training and norm.num_batches_tracked is not None:
                    norm.num_batches_tracked.add_(1)
            hidden = F.max_pool2d(F.relu(hidden), 2)
            fan_in = width
        if self.global_pool:
            hidden = hidden.mean(dim=(2, 3))
        hidden = F.dropout(hidden.flatten(1), self.dropout, self.training)
        weight = self._head_view()[:, :fan_in].reshape(self.num_classes, -1)
        return F.linear(hidden, weight, self.head.bias)

    def sort_channels(self, permute: Permute = _permute_in_place) -> None:
        blocks = self.blocks()
        for index, (conv, norm) in enumerate(blocks):
            order = torch.argsort(_importance(conv.weight), descending=True, stable=True)
            permute(conv.weight, order, 0)
            for tensor in (norm.weight, norm.bias, norm.running_mean, norm.running_var):
                assert tensor is not None
                permute(tensor, order, 0)
            if index + 1 < len(blocks):
                permute(blocks[index + 1][0].weight, order, 1)
            else:
                # The head's inputs are channel-major blocks of ``positions`` features.
                columns = order[:, None] * self.positions + torch.arange(self.positions)
                permute(self.head.weight, columns.flatten().to(order.device), 1)

    def base_batch_norms(self) -> list[nn.BatchNorm2d]:
        return [norm for _, norm in self.blocks()]

    def export_base(self) -> SmallCNN:
        base = SmallCNN(
            self.base_widths,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            dropout=self.dropout,
            global_pool=self.global_pool,
            image_size=self.image_size,
        )
        convs = [m for m in base.features if isinstance(m, nn.Conv2d)]
        norms = [m for m in base.features if isinstance(m, nn.BatchNorm2d)]
        head = [m for m in base.classifier if isinstance(m, nn.Linear)][0]
        with torch.no_grad():
            for (wide, wide_norm), plain, plain_norm in zip(
                self.blocks(), convs, norms, strict=True
            ):
                plain.weight.copy_(wide.weight[: plain.out_channels, : plain.in_channels])
                count = plain_norm.num_features
                plain_norm.weight.copy_(wide_norm.weight[:count])
                plain_norm.bias.copy_(wide_norm.bias[:count])
                assert wide_norm.running_mean is not None and plain_norm.running_mean is not None
                assert wide_norm.running_var is not None and plain_norm.running_var is not None
                plain_norm.running_mean.copy_(wide_norm.running_mean[:count])
                plain_norm.running_var.copy_(wide_norm.running_var[:count])
            head.weight.copy_(
                self._head_view()[:, : self.base_widths[-1]].reshape(self.num_classes, -1)
            )
            head.bias.copy_(self.head.bias)
        return base.to(self.head.weight.device).train(self.training)

    def base_recipe(self) -> dict:
        return {
            "name": "cnn",
            "kwargs": {
                "channels": self.base_widths,
                "num_classes": self.num_classes,
                "in_channels": self.in_channels,
                "dropout": self.dropout,
                "global_pool": self.global_pool,
                "image_size": self.image_size,
            },
        }


def make_sliceable(base: nn.Module, max_width_multiplier: float) -> SliceableModel:
    """The sliceable version of a plain ``MLP`` or ``SmallCNN``, its base channels = ``base``."""
    if isinstance(base, MLP):
        return SliceableMLP.from_base(base, max_width_multiplier)
    if isinstance(base, SmallCNN):
        return SliceableCNN.from_base(base, max_width_multiplier)
    raise KDistillError(
        f"NetAug slices the built-in mlp and cnn models, not {type(base).__name__}: set "
        "model.name to mlp or cnn"
    )


@register_model("sliceable-mlp")
def sliceable_mlp(max_width_multiplier: float = 2.6, **kwargs) -> SliceableMLP:
    """A sliceable MLP whose base is ``mlp(**kwargs)`` as that factory would draw it."""
    return SliceableMLP.from_base(MLP(**kwargs), max_width_multiplier)


@register_model("sliceable-cnn")
def sliceable_cnn(max_width_multiplier: float = 2.6, **kwargs) -> SliceableCNN:
    """A sliceable CNN whose base is ``cnn(**kwargs)`` as that factory would draw it."""
    return SliceableCNN.from_base(SmallCNN(**kwargs), max_width_multiplier)
