"""The one way kdistill imports a user's object by path: ``package.module:name``.

Models, loss terms and tasks are all extensible this way, so a user's own needs no fork.
"""

from __future__ import annotations

import importlib
from typing import Any

from kdistill.errors import KDistillError

__all__ = ["import_object"]


def import_object(path: str, what: str) -> Any:
    """The attribute at ``package.module:name``; ``what`` (e.g. "model", "loss term") names
    the kind of thing in the one-line errors."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise KDistillError(
            f"{what} {path!r} is not an import path of the form 'package.module:name'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        missing = getattr(error, "name", None) or ""
        if isinstance(error, ModuleNotFoundError) and (
            module_name == missing or module_name.startswith(missing + ".")
        ):
            raise KDistillError(
                f"cannot import module {module_name!r} for {what} {path!r} (no module named "
                f"{missing!r}): check the spelling and that its package is on PYTHONPATH"
            ) from None
        raise KDistillError(
            f"cannot import module {module_name!r} for {what} {path!r}: importing it "
            f"failed with {type(error).__name__}: {error}"
        ) from None
    if not hasattr(module, attribute):
        raise KDistillError(
            f"module {module_name!r} has no attribute {attribute!r} ({what} {path!r})"
        )
    return getattr(module, attribute)
