"""Capture intermediate tensors of a model by module path, without changing the model.

Feature-matching terms (FitNet hints, attention transfer, NST, ...) name the layers they read
with the paths of ``model.named_modules()`` (``"layers.2"``, ``"block.0.conv"``). A
:class:`FeatureCapture` puts a forward hook on each named module for the duration of a
``with`` block and keeps the last tensor that module produced (or received). The captured
student tensors keep their autograd graph, so a loss computed from them trains the student.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from kdistill.errors import KDistillError

CAPTURE_KINDS = ("output", "input")
MAX_LISTED_PATHS = 30


def module_paths(model: nn.Module) -> list[str]:
    """All submodule paths of ``model`` in registration order (the root, ``""``, left out)."""
    return [path for path, _ in model.named_modules() if path]


def describe_module_paths(model: nn.Module, limit: int = MAX_LISTED_PATHS) -> str:
    """The paths of ``model`` as one comma-separated line, cut after ``limit`` with a count."""
    paths = module_paths(model)
    if not paths:
        return "(the model has no submodules)"
    shown = ", ".join(paths[:limit])
    if len(paths) > limit:
        shown += f", ... ({len(paths) - limit} more)"
    return shown


def resolve_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule of ``model`` at ``path`` (``""`` is the model itself).

    Raises :class:`KDistillError` naming the model's module paths when ``path`` does not exist.
    """
    if not isinstance(path, str):
        raise KDistillError(f"a module path must be a string like 'layers.0', got {path!r}")
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise KDistillError(
            f"no module {path!r} in {type(model).__name__}; module paths are: "
            f"{describe_module_paths(model)}"
        ) from None


def _first_tensor(value: Any) -> Any:
    """A module's output may be a tuple (e.g. ``nn.LSTM``): keep its first element."""
    if isinstance(value, (tuple, list)) and value:
        return value[0]
    return value


class FeatureCapture:
    """Forward hooks on the named modules of one model; no change to the model.

    ``paths`` holds ``(path, kind)`` pairs, ``kind`` being ``"output"`` (what the module
    returns; for a tuple output, its first element) or ``"input"`` (its first positional
    argument). Paths are checked when the capture is built. Hooks exist only between
    :meth:`__enter__` and :meth:`__exit__` (or :meth:`close`); a module called several times
    in one forward pass keeps its last call.

    Example::

        with FeatureCapture(student, [("layers.2", "output")]) as capture:
            logits = student(x)
            hint = capture.get("layers.2")
    """

    def __init__(self, model: nn.Module, paths: Iterable[tuple[str, str]]) -> None:
        self.model = model
        self.requests: list[tuple[str, str]] = []
        for path, kind in paths:
            if kind not in CAPTURE_KINDS:
                raise KDistillError(
                    f"unknown capture kind {kind!r} for module {path!r}: use one of "
                    f"{', '.join(CAPTURE_KINDS)}"
                )
            resolve_module(model, path)
            if (path, kind) not in self.requests:
                self.requests.append((path, kind))
        self._captured: dict[tuple[str, str], torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []

    @property
    def is_open(self) -> bool:
        """True while the hooks are registered."""
        return bool(self._handles)

    def open(self) -> FeatureCapture:
        """Register one forward hook per requested module (idempotent)."""
        if self._handles:
            return self
        kinds_by_path: dict[str, list[str]] = {}
        for path, kind in self.requests:
            kinds_by_path.setdefault(path, []).append(kind)
        for path, kinds in kinds_by_path.items():
            module = resolve_module(self.model, path)
            self._handles.append(module.register_forward_hook(self._make_hook(path, kinds)))
        return self

    def _make_hook(
        self, path: str, kinds: list[str]
    ) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            for kind in kinds:
                value = _first_tensor(output) if kind == "output" else (args[0] if args else None)
                if isinstance(value, torch.Tensor):
                    self._captured[(path, kind)] = value

        return hook

    def close(self) -> None:
        """Remove every hook this capture registered; captured tensors stay readable."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> FeatureCapture:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def clear(self) -> None:
        """Forget the tensors of the previous forward pass (call it between batches)."""
        self._captured.clear()

    def get(self, path: str, kind: str = "output") -> torch.Tensor:
        """The tensor captured at ``path`` in the last forward pass."""
        if (path, kind) not in self.requests:
            requested = ", ".join(f"{p} ({k})" for p, k in self.requests) or "nothing"
            raise KDistillError(
                f"module {path!r} ({kind}) is not captured from {type(self.model).__name__}; "
                f"this capture holds: {requested}"
            )
        if (path, kind) not in self._captured:
            raise KDistillError(
                f"module {path!r} of {type(self.model).__name__} produced no tensor {kind}: "
                "run a forward pass inside the capture's `with` block, or pick a module the "
                "forward pass calls with a tensor"
            )
        return self._captured[(path, kind)]

    def as_dict(self) -> dict[tuple[str, str], torch.Tensor]:
        """Every tensor captured in the last forward pass, keyed by ``(path, kind)``."""
        return dict(self._captured)
