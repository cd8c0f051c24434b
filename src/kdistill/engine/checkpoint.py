"""Checkpoints and model files: safetensors written atomically, loaded without running code.

A file is written to a temporary name in the same folder, flushed and fsynced, then renamed
over the old one, so a run killed at any instant (even by SIGKILL) leaves either the previous
complete file or the new complete one. Run metadata (epoch, step, optimizer hyper-parameters,
the model's recipe) rides inside the safetensors header, so the tensors and the state that
goes with them can never disagree; a JSON sidecar repeats it for people to read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from kdistill.errors import KDistillError
from kdistill.files import atomic_write_bytes, atomic_write_text

METADATA_KEY = "kdistill"
CHECKSUM_KEY = "kdistill.sha256"
"""Header key of the sha256 of every tensor's name, dtype, shape and bytes: a file whose bytes
changed after it was written (a disk fault, a partial copy, a hand edit) is refused at load."""


def tensors_checksum(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> None:
    """Save tensors + JSON-able metadata as one safetensors file, atomically, with a sidecar
    and a checksum of the tensors in the header."""
    contiguous = {name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}
    # Tied weights (a language model's input and output embeddings) share storage, which
    # safetensors refuses: each name gets its own copy; loading fills both alike.
    seen: set[int] = set()
    for name, tensor in contiguous.items():
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen and tensor.numel():
            contiguous[name] = tensor.clone()
        seen.add(pointer)
    header = {METADATA_KEY: json.dumps(metadata), CHECKSUM_KEY: tensors_checksum(contiguous)}
    payload = save_safetensors_bytes(contiguous, metadata=header)
    atomic_write_bytes(path, payload)
    atomic_write_text(Path(path).with_suffix(".json"), json.dumps(metadata, indent=2) + "\n")


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_tensors`; safetensors never executes code."""
    path = Path(path)
    if not path.is_file():
        raise KDistillError(
            f"checkpoint {path} does not exist: check the path (runs write model.safetensors)"
        )
    payload = path.read_bytes()
    try:
        tensors = load_safetensors_bytes(payload)
        header_length = int.from_bytes(payload[:8], "little")
        header = json.loads(payload[8 : 8 + header_length])
    except (SafetensorError, ValueError, json.JSONDecodeError) as error:
        raise KDistillError(
            f"{path} is not a readable safetensors file ({error}): re-create it"
        ) from None
    stored = header.get("__metadata__", {})
    expected = stored.get(CHECKSUM_KEY)
    if expected is not None and expected != tensors_checksum(tensors):
        raise KDistillError(
            f"{path} is corrupt: its tensors do not match the checksum written with them; "
            "re-create it (or restore a copy)"
        )
    metadata = json.loads(stored.get(METADATA_KEY, "{}"))
    return tensors, metadata


def save_model(
    path: str | Path, model: nn.Module, recipe: dict[str, Any] | None, **extra: Any
) -> None:
    """Save a model's weights and the recipe that rebuilds it (``{"name":..., "kwargs":...}``)."""
    save_tensors(path, dict(model.state_dict()), {"kind": "model", "recipe": recipe, **extra})


def load_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights from ``.safetensors`` (with metadata) or a ``.pt``/``.pth`` state dict, safely."""
    path = Path(path)
    if path.suffix in {".pt", ".pth", ".bin"}:
        if not path.is_file():
            raise KDistillError(f"checkpoint {path} does not exist: check the path")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for unsafe or corrupt files
            raise KDistillError(
                f"{path} cannot be loaded as plain weights ({type(error).__name__}): "
                "save a state_dict (torch.save(model.state_dict(), ...)) or safetensors"
            ) from None
        if (
            isinstance(state, dict)
            and "state_dict" in state
            and isinstance(state["state_dict"], dict)
        ):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise KDistillError(f"{path} holds a {type(state).__name__}, not a state_dict")
        return state, {}
    return load_tensors(path)


def load_model(
    path: str | Path, recipe: dict[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Build a model from its file's recipe (or the given one) and load its weights."""
    from kdistill.models import create_model

    state, metadata = load_state_dict(path)
    recipe = recipe or metadata.get("recipe")
    if not recipe:
        raise KDistillError(
            f"{path} does not say how to build its model (a user nn.Module): pass --model-spec "
            "package.module:factory to kdistill evaluate, or model: {name, kwargs} in a teacher "
            "config"
        )
    check_finite(state, path)
    model = create_model(recipe["name"], **recipe.get("kwargs", {}))
    expected = model.state_dict()
    wrong_shapes = [
        f"{name} {tuple(tensor.shape)} vs {tuple(expected[name].shape)}"
        for name, tensor in state.items()
        if name in expected and tensor.shape != expected[name].shape
    ]
    if wrong_shapes:
        raise KDistillError(
            f"{path} does not fit model {recipe['name']} {recipe.get('kwargs', {})}: "
            f"shapes differ (file vs model) for {', '.join(wrong_shapes[:3])}"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise KDistillError(
            f"{path} does not fit model {recipe['name']} {recipe.get('kwargs', {})}: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return model, metadata


def check_finite(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse weights holding NaN or infinite values: a corrupt file or a diverged run, which
    would otherwise surface later as a "loss became nan" or as silently wrong predictions."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise KDistillError(
                f"{path} holds non-finite weights ({bad} of {tensor.numel()} values in {name} "
                "are NaN or infinite): the file is corrupt or its run diverged; re-create it"
            )


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors (for safetensors) and JSON-able values."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for parameter_id, state in state_dict["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{parameter_id}.{key}"] = value
            else:
                scalars.setdefault(str(parameter_id), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], saved: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, parameter_id, key = name.split(".", 2)
            state.setdefault(int(parameter_id), {})[key] = tensor
    for parameter_id, values in saved.get("scalars", {}).items():
        state.setdefault(int(parameter_id), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
