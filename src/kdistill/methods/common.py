"""What every method does before it calls the engine: write the config, build and check the
models, and say where and how the fit runs."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from kdistill.config import ModelConfig, RunConfig, config_differences, dump_config, parse_config
from kdistill.data import TrainingData
from kdistill.engine import FitSettings, is_main_process, resolve_device
from kdistill.engine.checkpoint import load_tensors
from kdistill.engine.metrics_log import METRICS_NAME
from kdistill.engine.resume import CHECKPOINT_NAME
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text, folder_lock
from kdistill.models import create_model
from kdistill.tasks import Task, create_task

__all__ = [
    "settle_run_folder",
    "build_model",
    "check_model",
    "claim_run_folder",
    "derived_seed",
    "file_sha256",
    "fit_settings",
    "resumable_checkpoint",
    "write_run_config",
]


CONFIG_NAME = "config.yaml"
RUN_FILES = (CONFIG_NAME, METRICS_NAME, CHECKPOINT_NAME)
"""Files that say a folder holds a run."""
OVERWRITTEN = (METRICS_NAME, CHECKPOINT_NAME, "checkpoint.json", "final.json")
"""What ``overwrite`` removes (in the folder and below) before a run starts afresh."""


@contextlib.contextmanager
def claim_run_folder(
    config: RunConfig,
    *,
    resume: bool,
    overwrite: bool = False,
    drop: Sequence[str] = (),
    may_raise: Sequence[str] = (),
) -> Iterator[Path]:
    """Hold ``config.output_dir`` for the lifetime of a run, then write ``config.yaml``.

    Call it after everything that can be validated has been (nothing is written before). It
    locks the folder (:func:`kdistill.files.folder_lock`: a second run there is refused), then
    refuses a folder that holds another run unless ``resume`` (continue it: its config must be
    the same, but for the keys in ``drop`` and cosmetic ones; a key of ``may_raise`` may be
    raised) or ``overwrite`` (start afresh: its metrics and checkpoints are removed).
    """
    run_dir = Path(config.output_dir)
    if not is_main_process():
        # Under torchrun rank 0 claims the folder for every process (torchrun stops the
        # others if it refuses); they only read from it.
        yield run_dir
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise KDistillError(f"output_dir {run_dir} is a file: choose a folder for --output-dir")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise KDistillError(
            f"cannot create output_dir {run_dir} ({error.strerror}): choose a writable --output-dir"
        ) from None
    with folder_lock(run_dir):
        if settle_run_folder(run_dir, resume=resume, overwrite=overwrite):
            _check_same_run(config, run_dir, drop, may_raise)
        write_run_config(config)
        yield run_dir


def settle_run_folder(run_dir: Path, *, resume: bool, overwrite: bool) -> bool:
    """Whether ``run_dir`` holds a run to resume. A folder holding a run is refused unless
    ``resume`` or ``overwrite`` (whose files are then removed: a fresh start)."""
    held = [name for name in RUN_FILES if (run_dir / name).exists()]
    if held and resume:
        return True
    if held and not overwrite:
        raise KDistillError(
            f"{run_dir} holds another run ({', '.join(held)}): pass --resume (resume=True) to "
            "continue it, --overwrite (overwrite=True) to replace it, or choose another folder"
        )
    for name in OVERWRITTEN if held else ():
        for path in run_dir.rglob(name):
            path.unlink(missing_ok=True)
    return False


def _check_same_run(
    config: RunConfig, run_dir: Path, drop: Sequence[str], may_raise: Sequence[str]
) -> None:
    """Refuse to resume ``run_dir`` with a config that trains something else, naming the keys."""
    path = run_dir / CONFIG_NAME
    if not path.exists():
        return
    try:
        raw = yaml.safe_load(path.read_text())
        previous = parse_config(raw if isinstance(raw, dict) else {}, str(path), type(config))
    except (KDistillError, yaml.YAMLError):
        return  # an older schema's config: the checkpoint's own checks still apply
    differ = config_differences(previous, config, drop)
    raised = [key for key in differ if key in may_raise and _raised(previous, config, key)]
    differ = [key for key in differ if key not in raised]
    if differ:
        raise KDistillError(
            f"{run_dir} holds a run with a different {', '.join(differ)}: resume with the "
            "same config, pass --overwrite to replace that run, or choose another --output-dir"
        )


def _raised(old: RunConfig, new: RunConfig, dotted: str) -> bool:
    before: Any = old
    after: Any = new
    for part in dotted.split("."):
        before, after = getattr(before, part), getattr(after, part)
    return bool(after > before)


def write_run_config(config: RunConfig) -> Path:
    """Create ``config.output_dir`` and write ``config.yaml`` there; returns the folder."""
    run_dir = Path(config.output_dir)
    if is_main_process():  # under torchrun, rank 0 writes for every process
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_NAME, dump_config(config))
    return run_dir


def fit_settings(
    config: RunConfig, run_dir: Path, *, seed: int | None = None, **options: Any
) -> FitSettings:
    """:class:`FitSettings` from a run config: its training section, seed and task (the
    device and the task are checked here, before a method writes anything)."""
    resolve_device(config.train.device)
    options.setdefault("dataset", dataset_spec(config.data.name))
    return FitSettings(
        train=config.train,
        run_dir=run_dir,
        seed=config.seed if seed is None else seed,
        task=create_task(config.task),
        **options,
    )


def dataset_spec(name: str) -> str:
    """``data.name`` as a model file records it: ``idx:``/``npz:`` paths made absolute, so
    ``kdistill evaluate`` finds the data from any folder."""
    kind, sep, rest = name.partition(":")
    if sep and kind.lower() in ("idx", "npz") and rest.strip():
        return f"{kind.lower()}:{Path(rest.strip()).expanduser().resolve()}"
    return name


def build_model(model: ModelConfig, seed: int) -> nn.Module:
    """A freshly initialised model, its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return create_model(model.name, **model.kwargs)


def check_model(task: Task, model: nn.Module, data: TrainingData, role: str) -> int:
    """Run ``model`` on one training example (one forward pass, the only one before training);
    returns its number of outputs after checking it covers the data set's classes."""
    outputs = task.probe(model, data.train, role)
    if outputs < data.num_classes:
        name = data.dataset.name if data.dataset is not None else "the training data"
        raise KDistillError(
            f"{name} has {data.num_classes} classes but {role} outputs {outputs}: set "
            f"model.kwargs.num_classes ≥ {data.num_classes}"
        )
    return outputs


def derived_seed(seed: int, tag: str) -> int:
    """A seed for one model of a multi-model run, derived by hashing ``(seed, tag)``.

    Generations and cohort members need distinct initialisations; ``seed + k`` would make
    generation 1 of seed 0 start exactly like generation 0 of seed 1, correlating the
    "independent" seeds of a benchmark, while a hash does not.
    """
    digest = hashlib.sha256(f"kdistill:{tag}:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resumable_checkpoint(run_dir: Path, identity: Mapping[str, Any]) -> bool:
    """Whether ``run_dir`` holds a fit checkpoint that continues the run ``identity`` names.

    ``identity`` is the ``metadata`` a method gives :func:`fit`. A checkpoint from a
    different config is the user's mistake and raises; one that differs otherwise (e.g. a
    generation whose teacher has since been retrained) is stale and is trained afresh.
    """
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return False
    _, saved = load_tensors(path)
    if saved.get("config_digest") != identity.get("config_digest"):
        raise KDistillError(
            f"{path} was written with a different config: resume with the same config, or "
            "use a new output_dir"
        )
    return all(saved.get(key) == value for key, value in identity.items())
