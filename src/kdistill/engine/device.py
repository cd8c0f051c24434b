"""The one place a device name becomes a ``torch.device``."""

from __future__ import annotations

import torch

from kdistill.errors import KDistillError

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; any other name must exist here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise KDistillError(
            f"train.device={name} is not a device: use cpu, cuda, cuda:N, mps or auto"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise KDistillError(
            f"train.device={name} but CUDA is not available here: use train.device=cpu or auto"
        )
    return device
