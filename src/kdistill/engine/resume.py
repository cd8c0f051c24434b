"""Everything a resume needs: the checkpoint a run writes after each epoch (and inside one,
with the epoch's running figures) and how a run continues from it to the weights an
uninterrupted run reaches. Under torchrun every process hands over its random state and
rank 0 writes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from kdistill.config import TrainConfig
from kdistill.engine.checkpoint import (
    check_finite,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_tensors,
)
from kdistill.engine.loop_state import FitSettings, LoopState, Partial
from kdistill.engine.metrics_log import MetricsLog
from kdistill.errors import KDistillError

__all__ = ["CHECKPOINT_NAME", "checkpoint_due", "restore", "save_checkpoint", "summed"]

CHECKPOINT_NAME = "checkpoint.safetensors"


def restore(
    loop: LoopState, path: Path, log: MetricsLog | None, settings: FitSettings
) -> list[dict[str, Any]]:
    """Load the checkpoint into ``loop``; returns the history it holds."""
    tensors, saved = load_tensors(path)
    steps_per_epoch = len(loop.loader)
    saved_epochs = saved.get("total_epochs")
    if (
        not isinstance(saved_epochs, int)
        or saved_epochs > loop.total_epochs
        or saved.get("steps_per_epoch") != steps_per_epoch
    ):
        raise KDistillError(
            f"{path} was written by a run of {saved_epochs} epochs x "
            f"{saved.get('steps_per_epoch')} steps, this one is {loop.total_epochs} x "
            f"{steps_per_epoch}: use the same config to resume, or a new output_dir"
        )
    objective_state = {
        k[len("objective.") :]: v for k, v in tensors.items() if k.startswith("objective.")
    }
    check_finite(objective_state, path)
    try:
        loop.objective.load_state_dict(objective_state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise KDistillError(
            f"{path} holds other models than this run builds ({first[:120]}): resume with "
            "the same config, or use a new output_dir"
        ) from None
    optimizer_from_tensors(loop.optimizer, tensors, saved["optimizer"])
    if saved.get("grad_scaler"):
        loop.scaler.load_state_dict(saved["grad_scaler"])
    # Each process continues its own random stream; a run resumed with another number of
    # processes gives every process rank 0's (the same data either way, other dropout masks).
    own = f"rng.torch.{loop.procs.rank}"
    torch.set_rng_state(tensors[own] if own in tensors else tensors["rng.torch"])
    loop.start_epoch, loop.step = saved["epoch"], saved["step"]
    if saved.get("partial"):
        loop.partial = _partial_from(tensors, saved["partial"])
        if not loop.procs.is_main:
            # Rank 0's checkpoint holds the running figures of every process (summed).
            loop.partial = Partial(loop.partial.batches, {}, 0, {}, loop.partial.learning_rate)
    if log is None:
        return list(saved.get("history", []))
    log.truncate_after(saved["epoch"])
    where = f"epoch {loop.start_epoch + 1}"
    if loop.partial is not None:
        where += f", after step {loop.partial.batches} of {steps_per_epoch}"
    print(f"kdistill: {settings.description}: resuming at {where} ({path})", file=sys.stderr)
    if saved_epochs < loop.total_epochs:
        schedule = settings.train.schedule.name
        print(
            f"kdistill: {settings.description}: train.epochs raised from {saved_epochs} to "
            f"{loop.total_epochs}; the {schedule} learning-rate schedule now spans "
            f"{loop.total_epochs} epochs from step {loop.step} on, so the weights differ from "
            f"a {loop.total_epochs}-epoch run from scratch",
            file=sys.stderr,
        )
    return list(saved.get("history", []))


def _partial_from(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> Partial:
    sums = {
        name[len("partial.loss.") :]: tensor
        for name, tensor in tensors.items()
        if name.startswith("partial.loss.")
    }
    meter = {
        name[len("partial.meter.") :]: tensor
        for name, tensor in tensors.items()
        if name.startswith("partial.meter.")
    }
    meter.update(saved["meter"])
    return Partial(saved["batches"], sums, saved["seen"], meter, saved["learning_rate"])


def summed(loop: LoopState, partial: Partial) -> Partial:
    """Under torchrun, an epoch's running figures summed over the processes (rank 0 saves
    them; after a resume the other processes start their share from zero)."""
    if not loop.procs.distributed:
        return partial
    total = loop.procs.sum
    meter: dict[str, Any] = {}
    for key, value in partial.meter.items():
        if isinstance(value, torch.Tensor):
            meter[key] = total(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            meter[key] = type(value)(total(torch.tensor(value)).item())
        else:
            meter[key] = value
    return Partial(
        partial.batches,
        {name: total(value) for name, value in sorted(partial.sums.items())},
        int(total(torch.tensor(partial.seen))),
        meter,
        partial.learning_rate,
    )


def checkpoint_due(loop: LoopState, config: TrainConfig, index: int) -> bool:
    """A checkpoint every ``train.checkpoint_every_steps`` steps, but for an epoch's last
    step (the end-of-epoch checkpoint follows it)."""
    every = config.checkpoint_every_steps
    return every is not None and loop.step % every == 0 and index + 1 < len(loop.loader)


def save_checkpoint(
    loop: LoopState,
    epochs_done: int,
    settings: FitSettings,
    history: list[dict[str, Any]],
    partial: Partial | None = None,
) -> None:
    """Everything a resume needs, after ``epochs_done`` epochs (and ``partial``'s steps of
    the next one, when written inside an epoch). Under torchrun every process hands over its
    random state and rank 0 writes."""
    rng_states = loop.procs.gather(torch.get_rng_state())
    if not loop.procs.is_main:
        return
    tensors = {f"objective.{k}": v for k, v in loop.objective.state_dict().items()}
    optimizer_tensors, optimizer_saved = optimizer_to_tensors(loop.optimizer)
    tensors.update(optimizer_tensors)
    tensors["rng.torch"] = rng_states[0]
    if loop.procs.distributed:
        tensors.update(
            {f"rng.torch.{rank}": state.clone() for rank, state in enumerate(rng_states)}
        )
    partial_saved = None
    if partial is not None:
        tensors.update({f"partial.loss.{k}": v for k, v in partial.sums.items()})
        meter_values = {}
        for key, value in partial.meter.items():
            if isinstance(value, torch.Tensor):
                tensors[f"partial.meter.{key}"] = value
            else:
                meter_values[key] = value
        partial_saved = {
            "batches": partial.batches,
            "seen": partial.seen,
            "meter": meter_values,
            "learning_rate": partial.learning_rate,
        }
    save_tensors(
        Path(settings.run_dir) / CHECKPOINT_NAME,
        tensors,
        {
            "kind": "checkpoint",
            "epoch": epochs_done,
            "step": loop.step,
            "partial": partial_saved,
            "total_epochs": loop.total_epochs,
            "steps_per_epoch": len(loop.loader),
            "seed": settings.seed,
            "optimizer": optimizer_saved,
            # fp16 loss scale (empty unless fp16 on CUDA): part of a bit-exact resume.
            "grad_scaler": {
                k: v for k, v in loop.scaler.state_dict().items() if not isinstance(v, torch.Tensor)
            },
            "history": history,
            **settings.metadata,
        },
    )
