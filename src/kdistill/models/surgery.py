"""Edits to a trained model's weights."""

from __future__ import annotations

import copy

import torch

from kdistill.errors import KDistillError

__all__ = ["apply_class_bias_shift", "subset_head"]


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


def _last_linear(model: torch.nn.Module) -> tuple[str, torch.nn.Linear]:
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    ]
    if not found:
        raise KDistillError("a subset head needs a model whose output layer is an nn.Linear")
    return found[-1]


def subset_head(
    model: torch.nn.Module, classes: list[int], dustbin: bool = True
) -> torch.nn.Module:
    """A copy of ``model`` whose output layer covers only ``classes`` (in that order), plus one
    dustbin output for every other class when ``dustbin`` (Hinton et al. 2015, section 5: a
    specialist starts from the generalist's weights).

    The rows of ``classes`` are copied from the old output layer; the dustbin row is their
    complement's mean weight with bias ``logsumexp`` of the complement's biases, so at the start
    the dustbin's logit approximates the log of the total mass of the classes it stands for.
    """
    edited = copy_module(model)
    path, old = _last_linear(edited)
    outputs = old.out_features
    outside = [c for c in classes if not 0 <= c < outputs]
    if outside or len(set(classes)) != len(classes) or not classes:
        raise KDistillError(
            f"subset head classes must be distinct ids in 0..{outputs - 1}, got {classes}"
        )
    rest = [c for c in range(outputs) if c not in set(classes)]
    new = torch.nn.Linear(old.in_features, len(classes) + int(dustbin), bias=old.bias is not None)
    with torch.no_grad():
        new.weight[: len(classes)] = old.weight[classes]
        if old.bias is not None:
            new.bias[: len(classes)] = old.bias[classes]
        if dustbin:
            new.weight[-1] = old.weight[rest].mean(dim=0)
            if old.bias is not None:
                new.bias[-1] = torch.logsumexp(old.bias[rest], dim=0)
    new.to(old.weight.device)
    parent_path, _, name = path.rpartition(".")
    parent = edited.get_submodule(parent_path) if parent_path else edited
    setattr(parent, name, new)
    if isinstance(getattr(edited, "num_classes", None), int):
        setattr(edited, "num_classes", new.out_features)  # noqa: B010 (mypy: a plain attribute)
    return edited


def copy_module(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` (its own parameters)."""
    return copy.deepcopy(model)
