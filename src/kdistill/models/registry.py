"""A small model registry: factories by name, or any user factory by import path.

``create_model("mlp", hidden_sizes=[800, 800])`` or
``create_model("mypackage.models:build_net", width=64)``. Models know nothing about training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from kdistill.errors import KDistillError
from kdistill.plugins import import_object

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make a factory available to :func:`create_model` under ``name``."""

    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[name] = factory
        return factory

    return add


def list_models() -> list[str]:
    return sorted(_MODELS)


def _import_factory(path: str) -> Callable[..., nn.Module]:
    if ":" not in path:
        raise KDistillError(
            f"model {path!r} is neither a registered name ({', '.join(list_models())}) "
            "nor an import path of the form 'package.module:factory'"
        )
    factory = import_object(path, "model")
    module_name, _, attribute = path.partition(":")
    if factory is None or not callable(factory):
        raise KDistillError(
            f"module {module_name!r} has no callable {attribute!r} (model {path!r})"
        )
    return factory


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model from a registered name or a ``package.module:factory`` path."""
    factory = _MODELS.get(name) if ":" not in name else None
    if factory is None:
        factory = _import_factory(name)
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as error:
        raise KDistillError(
            f"model {name!r} does not accept these kwargs {sorted(kwargs)}: {error}"
        ) from None
    except ValueError:
        pass  # builtins without a signature: let the call itself report
    try:
        model = factory(**kwargs)
    except TypeError as error:
        raise KDistillError(
            f"model {name!r} does not accept these kwargs {sorted(kwargs)}: {error}"
        ) from None
    if not isinstance(model, nn.Module):
        raise KDistillError(
            f"model factory {name!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
