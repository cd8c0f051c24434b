"""Build loss terms by name, as configs list them.

A config entry such as ``{kind: fitnet, weight: 100, student: "layers.2", teacher:
"layers.4"}`` becomes ``build_term("fitnet", 100, student="layers.2", teacher="layers.4")``.
Options are the keyword arguments of the term's constructor; module paths are always called
``student`` and ``teacher`` (``pairs: [[student_path, teacher_path], ...]`` for terms over
several layer pairs).

Terms are registered like models: decorate a :class:`~kdistill.losses.base.LossTerm` subclass
with :func:`register_term` and it is buildable by its ``name``. A term in your own code needs
no fork: give its import path as the kind, ``kind: "mypackage.losses:MyTerm"``.
"""

from __future__ import annotations

import inspect
from typing import Any

from kdistill.errors import KDistillError

# The built-in term modules register their classes on import: importing them here makes
# TERM_REGISTRY complete whenever build_term is reached.
from kdistill.losses import (  # noqa: F401
    causal_lm,
    dense,
    detection,
    features,
    generators,
    gradients,
    language,
    logits,
    relations,
    sparsity,
    weights,
)
from kdistill.losses.base import TERM_REGISTRY, LossTerm, register_term
from kdistill.plugins import import_object

__all__ = ["TERM_REGISTRY", "build_term", "register_term", "term_options"]


def _import_term(path: str) -> type[LossTerm]:
    """The :class:`LossTerm` subclass at import path ``package.module:ClassName``."""
    if ":" not in path.strip(":") or path.startswith(":") or path.endswith(":"):
        raise KDistillError(
            f"loss term kind {path!r} is not an import path of the form 'package.module:ClassName'"
        )
    term_class = import_object(path, "loss term")
    if not (isinstance(term_class, type) and issubclass(term_class, LossTerm)):
        found = (
            f"class {term_class.__qualname__}"
            if isinstance(term_class, type)
            else f"a {type(term_class).__name__}, not a class"
        )
        raise KDistillError(
            f"loss term {path!r} is {found}: it must subclass kdistill.losses.base.LossTerm"
        )
    return term_class


def term_options(term_class: type[LossTerm]) -> tuple[list[str], list[str]]:
    """``(accepted, required)`` option names of a term: its constructor's keyword arguments
    other than ``weight``."""
    accepted: list[str] = []
    required: list[str] = []
    for parameter in list(inspect.signature(term_class.__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name == "weight":
            continue
        accepted.append(parameter.name)
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    return accepted, required


def build_term(kind: str, weight: float = 1.0, **options: Any) -> LossTerm:
    """A new :class:`LossTerm` of ``kind`` with ``weight`` and ``options``.

    ``kind`` is a registered name or an import path ``package.module:ClassName``. Raises
    :class:`KDistillError` for an unknown kind (listing the known ones), an import path that
    does not lead to a LossTerm subclass, an unknown option or a missing required option
    (listing the accepted ones).
    """
    if ":" in kind:
        term_class = _import_term(kind)
    elif kind in TERM_REGISTRY:
        term_class = TERM_REGISTRY[kind]
    else:
        raise KDistillError(
            f"unknown loss term kind {kind!r} in distill.terms: use one of "
            f"{', '.join(sorted(TERM_REGISTRY))}"
        )
    accepted, required = term_options(term_class)
    shown = ", ".join(accepted) if accepted else "none besides weight"
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise KDistillError(
            f"unknown option(s) {', '.join(unknown)} for loss term {kind!r}: accepted options are "
            f"{shown}"
        )
    missing = [name for name in required if name not in options]
    if missing:
        raise KDistillError(
            f"loss term {kind!r} needs option(s) {', '.join(missing)} (accepted options are "
            f"{shown})"
        )
    try:
        weight = float(weight)
    except (TypeError, ValueError):
        raise KDistillError(
            f"loss term {kind!r}: weight must be a number, got {weight!r}"
        ) from None
    return term_class(weight=weight, **options)
