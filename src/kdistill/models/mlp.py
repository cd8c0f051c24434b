"""Multilayer perceptrons as in Hinton et al. (2015), section 3: ReLU layers, dropout on the
inputs and hidden units, and an optional max-norm constraint on each unit's incoming weights
(the paper's "weight constraints", from Srivastava et al. 2014, section 5.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kdistill.models.registry import register_model


class MLP(nn.Module):
    """``input -> [Linear -> ReLU -> Dropout] x len(hidden_sizes) -> Linear -> logits``.

    ``layers`` is an ``nn.Sequential`` so intermediate tensors have stable module paths
    (``layers.1`` is the first Linear, ``layers.2`` its ReLU, ...).
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (800, 800),
        num_classes: int = 10,
        input_size: int = 784,
        input_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        max_norm: float | None = None,
    ) -> None:
        super().__init__()
        self.max_norm = max_norm
        modules: list[nn.Module] = [nn.Flatten()]
        if input_dropout > 0:
            modules.append(nn.Dropout(input_dropout))
        width = input_size
        for hidden_size in hidden_sizes:
            modules += [nn.Linear(width, hidden_size), nn.ReLU()]
            if hidden_dropout > 0:
                modules.append(nn.Dropout(hidden_dropout))
            width = hidden_size
        modules.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*modules)
        self.num_classes = num_classes

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)

    @torch.no_grad()
    def apply_weight_constraints(self) -> None:
        """Rescale every unit's incoming weight vector to L2 norm at most ``max_norm``."""
        if self.max_norm is None:
            return
        for module in self.layers:
            if isinstance(module, nn.Linear):
                norms = module.weight.norm(dim=1, keepdim=True)
                module.weight.mul_(torch.clamp(self.max_norm / (norms + 1e-12), max=1.0))


@register_model("mlp")
def mlp(**kwargs) -> MLP:
    return MLP(**kwargs)
