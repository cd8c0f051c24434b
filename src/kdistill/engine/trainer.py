"""The one training loop every kdistill job uses.

Read it top to bottom: for each epoch the objective's ``start_epoch`` hook runs (NetAug sorts
channels there), then for each batch the objective returns named losses, their sum is
back-propagated, gradients are clipped, the optimizer steps, constraints are applied; after
each epoch the objective's models are evaluated, metrics go to JSONL (and TensorBoard), and a
full checkpoint is written atomically. After the last epoch the ``finish_training`` hook runs
(NetAug re-estimates batch-norm statistics), then the final evaluation and the model files. ``resume=True`` restarts from it
and ends with the same weights as an uninterrupted run with the same seed.

``train.checkpoint_every_steps`` adds checkpoints inside an epoch (with the epoch's running
figures), and SIGTERM (:mod:`kdistill.engine.interrupt`) saves one at the next step boundary
before the run stops; a resume then continues mid-epoch to the same weights.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from kdistill.data import TrainingData
from kdistill.engine import resume as checkpointing
from kdistill.engine.checkpoint import (
    save_model,
)
from kdistill.engine.device import resident_split, resolve_device
from kdistill.engine.distributed import Processes, is_main_process, processes
from kdistill.engine.interrupt import stop_requested, stoppable
from kdistill.engine.loop_state import FitSettings, LoopState, Partial
from kdistill.engine.metrics_log import MetricsLog, one_line
from kdistill.engine.objective import Objective, ObjectiveOutput
from kdistill.engine.optim import build_optimizer, learning_rate_at
from kdistill.engine.resume import CHECKPOINT_NAME
from kdistill.engine.stopping import early_stopping_target, patience_ran_out
from kdistill.errors import KDistillError, Terminated
from kdistill.files import atomic_write_text, folder_lock


@dataclass
class FitResult:
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def errors(self, model: str, split: str = "test") -> int:
        return int(self.final[model][split]["errors"])


def _autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager:
    if mode == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


FINITE_CHECK_STEPS = 50
"""How often (in steps) the running loss is read back to stop on a NaN or infinite loss."""


def _check_finite(
    loss_sums: dict[str, torch.Tensor],
    epoch: int,
    first_step: int,
    last_step: int,
    procs: Processes | None = None,
) -> None:
    # A non-finite loss makes its running sum non-finite for the rest of the epoch, so one
    # read per window catches it before the epoch's checkpoint is written.
    if not loss_sums:
        return
    total = torch.stack(list(loss_sums.values())).sum()
    if procs is not None:  # summed over the processes, so all of them stop at the same step
        total = procs.sum(total)
    if not torch.isfinite(total):
        raise KDistillError(
            f"loss became {float(total)} at epoch {epoch + 1}, between steps {first_step + 1} "
            f"and {last_step}: lower train.optimizer.lr or set train.grad_clip"
        )


def fit(
    objective: Objective,
    data: TrainingData,
    settings: FitSettings,
    *,
    resume: bool = False,
) -> FitResult:
    """Train ``objective`` on ``data.train``; evaluate its models on ``data.eval_splits`` after
    every epoch.

    Writes to ``settings.run_dir``: ``metrics.jsonl``, ``checkpoint.safetensors`` (everything
    needed to resume) and one ``<model>.safetensors`` per evaluated model, with its recipe and
    the input encoding, so it loads and evaluates by path. ``resume`` continues from the
    checkpoint and ends with the same weights as an uninterrupted run.
    """
    run_dir = Path(settings.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Under torchrun only rank 0 locks the folder, evaluates each epoch and writes.
    main = is_main_process()
    with folder_lock(run_dir) if main else contextlib.nullcontext(), stoppable():
        loop = _start(objective, data, settings)
        # Before the restore: naming the evaluated models may build one (NetAug's exported
        # base draws its initial weights), which must not move the restored random state.
        rule = settings.train.early_stopping
        watched = (
            early_stopping_target(rule, list(objective.evaluation_models()), data)
            if rule is not None
            else None
        )
        log = MetricsLog(run_dir, settings.train.tensorboard) if main else None
        result = FitResult(run_dir)
        if resume and (run_dir / CHECKPOINT_NAME).exists():
            result.history = checkpointing.restore(loop, run_dir / CHECKPOINT_NAME, log, settings)
        elif log is not None:  # a fresh start, also when --resume finds no checkpoint
            log.path.unlink(missing_ok=True)
        started = time.perf_counter()
        for epoch in range(loop.start_epoch, loop.total_epochs):
            if _stop_early(loop, result.history, settings, watched):
                break
            record = _train_epoch(loop, epoch, settings, result.history)
            if log is not None:
                eval_started = time.perf_counter()
                record.update(_evaluate_models(objective, data, settings, loop.device))
                record["eval_seconds"] = round(time.perf_counter() - eval_started, 3)
                log.write(record)
                if settings.train.progress:
                    tqdm.write(one_line(settings.description, record))
            result.history.append(record)
            checkpointing.save_checkpoint(loop, epoch + 1, settings, result.history)
            if _stop_now(loop):  # SIGTERM during the evaluation: the checkpoint is written
                raise Terminated()
        _finish_training(loop)
        result.seconds = time.perf_counter() - started
        _save_models(objective, data, settings, loop, result)
        # Every process returns rank 0's history (only it evaluated each epoch), and none
        # returns before rank 0 has written the model files: what runs next (a born-again
        # generation, a reproduction's next stage) may read them.
        result.history = loop.procs.from_main(result.history)
    return result


def _stop_early(
    loop: LoopState, history: list[dict[str, Any]], settings: FitSettings, watched: str | None
) -> bool:
    """Whether ``train.early_stopping``'s patience has run out (rank 0 decides for every
    process under torchrun: only it evaluates)."""
    rule = settings.train.early_stopping
    if rule is None or watched is None:
        return False
    stop = int(loop.procs.is_main and patience_ran_out(history, rule, watched, settings.task.name))
    if loop.procs.distributed:
        stop = int(loop.procs.sum(torch.tensor(stop)))
    if stop and loop.procs.is_main and settings.train.progress:
        tqdm.write(
            f"{settings.description}: stopped after epoch {len(history)}: {rule.split} "
            f"{rule.metric} has not improved for {rule.patience} epochs"
        )
    return bool(stop)


def _start(objective: Objective, data: TrainingData, settings: FitSettings) -> LoopState:
    """Device, batches, lazy adapters, optimizer and loss scaler, in that order."""
    config = settings.train
    device = resolve_device(config.device)
    procs = processes(device)
    if device.type == "cuda" and procs.distributed:
        device = torch.device("cuda", procs.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(settings.seed)
    objective.to(device)
    loader = settings.task.loader(
        resident_split(data.train, device),
        config.batch_size,
        shuffle=True,
        seed=settings.seed,
        max_shift=data.max_shift,
        device=device,
        rank=procs.rank,
        world_size=procs.world_size,
    )
    loader.set_epoch(0)
    # Eval mode: the dry run that builds lazy adapters must not move batch-norm statistics.
    objective.eval()
    objective.prepare(next(iter(loader)))
    if config.channels_last:  # after prepare: lazily built adapters convert too
        objective.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = build_optimizer(objective.parameter_groups(), config.optimizer)
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
    scaler = torch.amp.GradScaler(
        device.type, enabled=config.mixed_precision == "fp16" and device.type == "cuda"
    )
    forward: Callable[[Any], ObjectiveOutput] = objective
    if procs.distributed:
        # Gradients averaged over the processes; buffers are not broadcast (a cached
        # teacher-logit table is one, and every process holds the same one).
        forward = DistributedDataParallel(
            objective,
            device_ids=[procs.local_rank] if device.type == "cuda" else None,
            broadcast_buffers=False,
        )
    return LoopState(objective, loader, optimizer, scaler, device, config.epochs, procs, forward)


def _train_epoch(
    loop: LoopState, epoch: int, settings: FitSettings, history: list[dict[str, Any]]
) -> dict[str, Any]:
    """One pass over the training batches (the rest of one, after a resume inside it);
    returns the epoch's training record."""
    config, task, objective, optimizer = (
        settings.train,
        settings.task,
        loop.objective,
        loop.optimizer,
    )
    objective.train()
    objective.start_epoch(epoch, loop.total_epochs, optimizer)
    loop.loader.set_epoch(epoch)
    # Running sums stay on the device and are read once per epoch: reading a GPU value
    # every step (float(), int(), a Python `if` on a tensor) would stall the pipeline.
    sums: dict[str, torch.Tensor] = {}
    meter = task.meter(loop.device)
    seen = 0
    learning_rate = config.optimizer.lr
    done, loop.partial = loop.partial, None
    if done is not None:
        sums = {name: value.to(loop.device) for name, value in done.sums.items()}
        meter.load_state(done.meter)
        seen, learning_rate = done.seen, done.learning_rate
    checked_step = loop.step
    epoch_started = time.perf_counter()
    bar = tqdm(
        loop.loader,
        desc=f"{settings.description} {epoch + 1}/{loop.total_epochs}",
        leave=False,
        disable=not (config.progress and sys.stderr.isatty()),
        unit="batch",
    )
    for index, batch in enumerate(bar):
        if done is not None and index < done.batches:
            continue  # trained before the checkpoint; drawn again so the epoch's jitter matches
        learning_rate = learning_rate_at(
            loop.step, loop.total_steps, len(loop.loader), config.optimizer.lr, config.schedule
        )
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * group.get("lr_scale", 1.0)
        with _autocast(loop.device, config.mixed_precision):
            output = loop.forward(batch) if loop.forward is not None else objective(batch)
        loss = cast(torch.Tensor, sum(output.losses.values()))
        share = getattr(batch, "share", 1.0)
        if share != 1.0:  # an uneven split of the global batch (see Batch.share)
            loss = loss * share
        optimizer.zero_grad(set_to_none=True)
        loop.scaler.scale(loss).backward()
        loop.scaler.unscale_(optimizer)
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(list(objective.trainable_parameters()), config.grad_clip)
        loop.scaler.step(optimizer)
        loop.scaler.update()
        objective.after_step()
        loop.step += 1
        size = task.batch_size(batch)
        for name, value in output.losses.items():
            weighted = value.detach().float() * size
            sums[name] = sums[name] + weighted if name in sums else weighted
        meter.update(output.outputs, batch)
        seen += size
        if loop.step - checked_step >= FINITE_CHECK_STEPS:
            _check_finite(sums, epoch, checked_step, loop.step, loop.procs)
            checked_step = loop.step
        stopping = _stop_now(loop)
        if stopping or checkpointing.checkpoint_due(loop, config, index):
            _check_finite(sums, epoch, checked_step, loop.step, loop.procs)
            partial = checkpointing.summed(
                loop, Partial(index + 1, sums, seen, meter.state(), learning_rate)
            )
            checkpointing.save_checkpoint(loop, epoch, settings, history, partial)
        if stopping:
            raise Terminated()
    _check_finite(sums, epoch, checked_step, loop.step, loop.procs)
    if loop.procs.distributed:
        names = sorted(sums)
        totals = loop.procs.sum(torch.stack([sums[name] for name in names]))
        sums = dict(zip(names, totals, strict=True))
        seen = int(loop.procs.sum(torch.tensor(seen)))
        meter.reduce(loop.procs.sum)
    seconds = time.perf_counter() - epoch_started
    return {
        "epoch": epoch + 1,
        "step": loop.step,
        "lr": learning_rate,
        "seconds": round(seconds, 3),
        "samples_per_second": round(seen / seconds, 1),
        "train": {"loss": {k: float(v) / seen for k, v in sums.items()}, **meter.summary()},
    }


def _stop_now(loop: LoopState) -> bool:
    """A stop was requested (SIGTERM, Ctrl-C); under torchrun, in any process, so that all of
    them stop after the same step."""
    requested = stop_requested()
    if loop.procs.distributed:
        requested = bool(loop.procs.sum(torch.tensor(int(requested))))
    return requested


def _finish_training(loop: LoopState) -> None:
    """The objective's last word on its models before they are evaluated and saved (NetAug's
    batch-norm re-estimation). It reads training batches in the order of epoch 0 and changes
    no checkpointed state but the models', so a resumed run ends the same."""
    loop.loader.set_epoch(0)
    loop.objective.finish_training(loop.loader)


def _evaluate_models(
    objective: Objective,
    data: TrainingData,
    settings: FitSettings,
    device: torch.device,
    with_details: bool = False,
) -> dict[str, Any]:
    """Model name -> split name -> the task's metrics summary."""
    return {
        model_name: {
            split_name: settings.task.evaluate(
                model, split, settings.train.eval_batch_size, device
            ).summary(with_details)
            for split_name, split in data.eval_splits.items()
        }
        for model_name, model in objective.evaluation_models().items()
    }


def _save_models(
    objective: Objective,
    data: TrainingData,
    settings: FitSettings,
    loop: LoopState,
    result: FitResult,
) -> None:
    """Final metrics (with the confusion matrices) and one model file per evaluated model."""
    result.final = _evaluate_models(objective, data, settings, loop.device, with_details=True)
    if not loop.procs.is_main:
        return
    run_dir = Path(settings.run_dir)
    for model_name, model in objective.evaluation_models().items():
        save_model(
            run_dir / f"{model_name}.safetensors",
            model,
            settings.recipes.get(model_name),
            metrics=result.final[model_name],
            epochs=loop.total_epochs,
            seed=settings.seed,
            task=settings.task.name,
            input_encoding=data.encoding.describe(),
            dataset=settings.dataset,
            # Per-example stored shape: what an exported file takes (kdistill export).
            stored_shape=list(data.train.inputs.shape[1:]),
            **settings.metadata,
        )
    atomic_write_text(run_dir / "final.json", json.dumps(result.final, indent=2) + "\n")
