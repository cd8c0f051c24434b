"""A trained model plus the input encoding it was trained with, as one module.

The exported file then takes what the data set stores (pixel values 0..255 for images, raw
features for tabular data) as float32, and does the scaling, normalisation and reshaping the
training run did, so a deployment cannot feed it differently encoded inputs by mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdistill.data import InputEncoding
from kdistill.engine.checkpoint import load_model
from kdistill.errors import KDistillError

__all__ = ["Deployable", "load_deployable", "model_file_of"]

# What fit saves, in the order a run folder is searched.
MODEL_FILES = ("student.safetensors", "model.safetensors")


class Deployable(nn.Module):
    """``model(encoding.encode(stored))`` with the encoding's constants as buffers."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, encoding: InputEncoding) -> None:
        super().__init__()
        self.model = model.eval()
        self.divisor = float(encoding.divisor)
        self.shape = tuple(encoding.shape) if encoding.shape is not None else None
        self.normalise = encoding.mean is not None and encoding.std is not None
        self.register_buffer(
            "mean", encoding.mean if encoding.mean is not None else torch.zeros(())
        )
        self.register_buffer("std", encoding.std if encoding.std is not None else torch.ones(()))
        self.eval()  # an inference wrapper: exporters trace eval-mode graphs (and warn otherwise)

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        values = stored / self.divisor if self.divisor != 1.0 else stored
        if self.normalise:
            values = (values - self.mean) / self.std
        if self.shape is not None:
            values = values.reshape(values.shape[0], *self.shape)
        return self.model(values)


def model_file_of(path: str | Path) -> Path:
    """The model file of a run folder (the student if there is one), or ``path`` itself."""
    path = Path(path)
    if path.is_dir():
        for name in MODEL_FILES:
            if (path / name).is_file():
                return path / name
        raise KDistillError(
            f"{path} holds no {' or '.join(MODEL_FILES)}: give a finished run folder or a model file"
        )
    if not path.is_file():
        raise KDistillError(
            f"{path} does not exist: give a run folder or a .safetensors model file"
        )
    return path


def load_deployable(
    path: str | Path, recipe: dict[str, Any] | None = None
) -> tuple[Deployable, dict[str, Any]]:
    """The model at ``path`` (a run folder or model file) wrapped with its input encoding."""
    model, metadata = load_model(model_file_of(path), recipe)
    described = metadata.get("input_encoding")
    encoding = (
        InputEncoding.from_description(described)
        if described is not None
        else InputEncoding(divisor=255.0)  # files from before encodings were recorded: pixels
    )
    return Deployable(model, encoding).eval(), metadata
