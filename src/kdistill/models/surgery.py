"""Edits to a trained model's weights."""

from __future__ import annotations

import torch

from kdistill.errors import KDistillError

__all__ = ["apply_class_bias_shift"]


def apply_class_bias_shift(model: torch.nn.Module, shifts: dict[int, float]) -> None:
    """Add ``shifts[c]`` to the output bias of class ``c`` (Hinton et al. 2015, section 3:
    the fix for classes missing from the transfer set)."""
    final = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    if not final or final[-1].bias is None:
        raise KDistillError("class_bias_shift needs a model whose last Linear layer has a bias")
    bias = final[-1].bias
    outside = [label for label in shifts if not 0 <= int(label) < bias.shape[0]]
    if outside:
        raise KDistillError(
            f"bias shift for class {outside[0]}, but the model has classes 0..{bias.shape[0] - 1}"
        )
    with torch.no_grad():
        for label, shift in shifts.items():
            bias[int(label)] += float(shift)
