"""Reading, overriding, digesting and writing run configs: YAML in, a validated config out
(one-line errors naming the key), and the digest that names a study's unit folders."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kdistill.config.runs import VERB_SECTIONS, RunConfig, config_type_for
from kdistill.errors import KDistillError


def _parse_value(text: str, override: str = "") -> Any:
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        raise KDistillError(
            f"override {override or text!r}: the value is not valid YAML: quote it, e.g. "
            "--set 'train.epochs=5' or --set \"distill.teachers=[{checkpoint: FILE}]\""
        ) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config dict."""
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise KDistillError(
                f"override {override!r} is not of the form key.sub=value (e.g. train.epochs=5)"
            )
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise KDistillError(f"override {override!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = _parse_value(value, override)
    return raw


def _format_error(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "missing" and location in VERB_SECTIONS:
        return f"{source}: this config has no {location} section: add one (see configs/)"
    if first["type"] == "extra_forbidden":
        message = "unknown key (check its spelling and section)"
        if location in VERB_SECTIONS:
            verb = VERB_SECTIONS[location][0]
            message = f"this verb does not read it: run `kdistill {verb}`, or remove the section"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{source}: key {location}: {message}{more}"


def parse_config(
    raw: dict[str, Any], source: str = "config", schema: type[RunConfig] | None = None
) -> RunConfig:
    """Validate ``raw`` as ``schema`` (by default the type its verb section implies)."""
    # ``distill: null`` (e.g. an override that turns a distillation stage into its
    # hard-label baseline) means no such section.
    raw = {key: value for key, value in raw.items() if not (key in VERB_SECTIONS and value is None)}
    schema = schema or config_type_for(raw)
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        raise KDistillError(_format_error(error, source)) from None


def load_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    schema: type[RunConfig] | None = None,
) -> RunConfig:
    """Read a YAML config (or start from defaults when ``path`` is None), apply overrides and
    validate it as ``schema`` (a verb's type; by default the one its sections imply)."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise KDistillError(
                f"config file {path} does not exist: pass a YAML file (see configs/)"
            )
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise KDistillError(f"{path}: not valid YAML{where}: fix the syntax") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise KDistillError(f"{path}: expected a mapping of sections (data, model, train, ...)")
        raw = loaded
    raw = apply_overrides(raw, overrides or [])
    return parse_config(raw, source, schema)


# Settings that change how a run is displayed or how fast it goes, never what it learns: a
# resumed run may change them freely.
COSMETIC_TRAIN_KEYS = (
    "progress",
    "threads",
    "channels_last",
    "tensorboard",
    "eval_batch_size",
    "checkpoint_every_steps",
)


def config_digest(config: RunConfig, drop: Sequence[str] = ()) -> str:
    """A digest of everything in ``config`` that changes what is trained, to key cached runs.

    Keys left at their defaults are left out, so adding a new optional setting to the schema
    does not invalidate every cached run; so are ``output_dir``, the cosmetic train options and
    every dotted key in ``drop`` (e.g. ``born_again.generations``, which a resumed run may raise).
    """
    content = config_content(config, drop)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def config_differences(old: RunConfig, new: RunConfig, drop: Sequence[str] = ()) -> list[str]:
    """The dotted keys (``distill.temperature``) whose values differ between two configs, as
    :func:`config_digest` sees them (``output_dir`` and cosmetic keys never differ)."""
    before = _flat(config_content(old, drop))
    after = _flat(config_content(new, drop))
    return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))


def _flat(content: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in content.items():
        if isinstance(value, dict):  # an empty section (all defaults) adds no key
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_content(config: RunConfig, drop: Sequence[str] = ()) -> dict[str, Any]:
    """What :func:`config_digest` hashes: the non-default keys that change what is trained."""
    content = config.model_dump(mode="json", exclude_defaults=True)
    content.pop("output_dir", None)
    for key in COSMETIC_TRAIN_KEYS:
        content.get("train", {}).pop(key, None)
    for dotted in drop:
        node: Any = content
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    content = _without_empty_sections(content)
    # A verb's section left at its defaults still says which verb trains: without it an
    # all-default `kdistill netaug` (or born-again) run would share `kdistill train`'s digest.
    for section in VERB_SECTIONS:
        if getattr(config, section, None) is not None:
            content.setdefault(section, {})
    return content


def _without_empty_sections(content: dict[str, Any]) -> dict[str, Any]:
    # A section left empty by ``drop`` says the same as an absent one (all defaults).
    pruned = {}
    for key, value in content.items():
        if isinstance(value, dict):
            value = _without_empty_sections(value)
            if not value:
                continue
        pruned[key] = value
    return pruned


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
