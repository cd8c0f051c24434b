"""The one training loop every kdistill job uses.

Read it top to bottom: for each epoch, for each batch, the objective returns named losses,
their sum is back-propagated, gradients are clipped, the optimizer steps, constraints are
applied; after each epoch the objective's models are evaluated, metrics go to JSONL (and
TensorBoard), and a full checkpoint is written atomically. ``resume=True`` restarts from it
and ends with the same weights as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from kdistill.config import TrainConfig
from kdistill.data import BatchLoader, Split
from kdistill.engine.checkpoint import (
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_model,
    save_tensors,
)
from kdistill.engine.evaluate import evaluate
from kdistill.engine.objective import Objective
from kdistill.engine.optim import build_optimizer, learning_rate_at
from kdistill.errors import KDistillError

CHECKPOINT_NAME = "checkpoint.safetensors"
METRICS_NAME = "metrics.jsonl"


@dataclass
class FitResult:
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def errors(self, model: str, split: str = "test") -> int:
        return int(self.final[model][split]["errors"])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise KDistillError(
            f"train.device={name} but CUDA is not available here: use train.device=cpu or auto"
        )
    return device


def _autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager:
    if mode == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class _MetricsLog:
    """Appends one JSON object per line; optionally mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.path = run_dir / METRICS_NAME
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise KDistillError(
                    "train.tensorboard=true needs the tensorboard package: pip install 'kdistill[tensorboard]'"
                ) from None
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in _flatten(record).items():
                if isinstance(value, int | float) and key != "epoch":
                    self.writer.add_scalar(key, value, record["epoch"])
            self.writer.flush()

    def truncate_after(self, epoch: int) -> None:
        """On resume, drop records of epochs that the checkpoint does not contain."""
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line and json.loads(line)["epoch"] <= epoch
        ]
        self.path.write_text("".join(line + "\n" for line in kept))


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


FINITE_CHECK_STEPS = 50
"""How often (in steps) the running loss is read back to stop on a NaN or infinite loss."""


def _check_finite(
    loss_sums: dict[str, torch.Tensor], epoch: int, first_step: int, last_step: int
) -> None:
    # A non-finite loss makes its running sum non-finite for the rest of the epoch, so one
    # read per window catches it before the epoch's checkpoint is written.
    if not loss_sums:
        return
    total = torch.stack(list(loss_sums.values())).sum()
    if not torch.isfinite(total):
        raise KDistillError(
            f"loss became {float(total)} at epoch {epoch + 1}, between steps {first_step + 1} "
            f"and {last_step}: lower train.optimizer.lr or set train.grad_clip"
        )


def fit(
    objective: Objective,
    train_split: Split,
    eval_splits: dict[str, Split],
    config: TrainConfig,
    run_dir: str | Path,
    *,
    seed: int = 0,
    max_shift: int = 0,
    resume: bool = False,
    recipes: dict[str, dict[str, Any]] | None = None,
    description: str = "train",
    epochs: int | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``objective`` on ``train_split``; evaluate its models on ``eval_splits`` each epoch.

    Writes to ``run_dir``: ``metrics.jsonl``, ``checkpoint.safetensors`` (everything needed to
    resume) and one ``<model>.safetensors`` per evaluated model with its ``recipe`` so it loads
    by path. ``epochs`` overrides ``config.epochs`` (two-stage procedures use it).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    total_epochs = epochs if epochs is not None else config.epochs
    torch.manual_seed(seed)
    objective.to(device)
    loader = BatchLoader(
        train_split,
        config.batch_size,
        shuffle=True,
        seed=seed,
        drop_last=False,
        max_shift=max_shift,
        device=device,
    )
    loader.set_epoch(0)
    # Eval mode: the dry run that builds lazy adapters must not move batch-norm statistics.
    objective.eval()
    objective.prepare(next(iter(loader)))
    optimizer = build_optimizer(objective.trainable_parameters(), config.optimizer)
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
    scaler = torch.amp.GradScaler(
        device.type, enabled=config.mixed_precision == "fp16" and device.type == "cuda"
    )
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * total_epochs
    base_lr = config.optimizer.lr
    result = FitResult(run_dir)
    log = _MetricsLog(run_dir, config.tensorboard)

    start_epoch, step = 0, 0
    checkpoint_path = run_dir / CHECKPOINT_NAME
    if resume and checkpoint_path.exists():
        tensors, saved = load_tensors(checkpoint_path)
        if (
            saved.get("total_epochs") != total_epochs
            or saved.get("steps_per_epoch") != steps_per_epoch
        ):
            raise KDistillError(
                f"{checkpoint_path} was written by a run of {saved.get('total_epochs')} epochs x "
                f"{saved.get('steps_per_epoch')} steps, this one is {total_epochs} x {steps_per_epoch}: "
                "use the same config to resume, or a new output_dir"
            )
        objective.load_state_dict(
            {k[len("objective.") :]: v for k, v in tensors.items() if k.startswith("objective.")}
        )
        optimizer_from_tensors(optimizer, tensors, saved["optimizer"])
        if saved.get("grad_scaler"):
            scaler.load_state_dict(saved["grad_scaler"])
        torch.set_rng_state(tensors["rng.torch"])
        start_epoch, step = saved["epoch"], saved["step"]
        result.history = saved.get("history", [])
        log.truncate_after(saved["epoch"])
    else:  # a fresh start, also when --resume finds no checkpoint: no stale records
        log.path.unlink(missing_ok=True)

    started = time.perf_counter()
    for epoch in range(start_epoch, total_epochs):
        objective.train()
        loader.set_epoch(epoch)
        # Running sums stay on the device and are read once per epoch: reading a GPU value
        # every step (float(), int(), a Python `if` on a tensor) would stall the pipeline.
        sums: dict[str, torch.Tensor] = {}
        train_errors = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        checked_step = step
        epoch_started = time.perf_counter()
        bar = tqdm(
            loader,
            desc=f"{description} {epoch + 1}/{total_epochs}",
            leave=False,
            disable=not (config.progress and sys.stderr.isatty()),
            unit="batch",
        )
        for batch in bar:
            learning_rate = learning_rate_at(
                step, total_steps, steps_per_epoch, base_lr, config.schedule
            )
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
            with _autocast(device, config.mixed_precision):
                output = objective(batch)
            loss = sum(output.losses.values())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(
                    list(objective.trainable_parameters()), config.grad_clip
                )
            scaler.step(optimizer)
            scaler.update()
            objective.after_step()
            step += 1
            for name, value in output.losses.items():
                weighted = value.detach().float() * len(batch.labels)
                sums[name] = sums[name] + weighted if name in sums else weighted
            train_errors += (output.logits.detach().argmax(dim=1) != batch.labels).sum()
            seen += len(batch.labels)
            if step - checked_step >= FINITE_CHECK_STEPS:
                _check_finite(sums, epoch, checked_step, step)
                checked_step = step
        _check_finite(sums, epoch, checked_step, step)
        epoch_seconds = time.perf_counter() - epoch_started
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "lr": learning_rate,
            "seconds": round(epoch_seconds, 3),
            "samples_per_second": round(seen / epoch_seconds, 1),
            "train": {
                "loss": {k: float(v) / seen for k, v in sums.items()},
                "error_rate": int(train_errors) / seen,
            },
        }
        eval_started = time.perf_counter()
        for model_name, model in objective.evaluation_models().items():
            record[model_name] = {
                split_name: evaluate(model, split, config.eval_batch_size, device).summary()
                for split_name, split in eval_splits.items()
            }
        record["eval_seconds"] = round(time.perf_counter() - eval_started, 3)
        log.write(record)
        result.history.append(record)
        tqdm.write(_one_line(description, record)) if config.progress else None

        tensors = {f"objective.{k}": v for k, v in objective.state_dict().items()}
        optimizer_tensors, optimizer_saved = optimizer_to_tensors(optimizer)
        tensors.update(optimizer_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        save_tensors(
            checkpoint_path,
            tensors,
            {
                "kind": "checkpoint",
                "epoch": epoch + 1,
                "step": step,
                "total_epochs": total_epochs,
                "steps_per_epoch": steps_per_epoch,
                "seed": seed,
                "optimizer": optimizer_saved,
                # fp16 loss scale (empty unless fp16 on CUDA): part of a bit-exact resume.
                "grad_scaler": {
                    k: v for k, v in scaler.state_dict().items() if not isinstance(v, torch.Tensor)
                },
                "history": result.history,
                **(extra_metadata or {}),
            },
        )

    result.seconds = time.perf_counter() - started
    for model_name, model in objective.evaluation_models().items():
        final: dict[str, Any] = {}
        for split_name, split in eval_splits.items():
            final[split_name] = evaluate(model, split, config.eval_batch_size, device).summary(
                with_confusion=True
            )
        result.final[model_name] = final
        save_model(
            run_dir / f"{model_name}.safetensors",
            model,
            (recipes or {}).get(model_name),
            metrics=final,
            epochs=total_epochs,
            seed=seed,
            **(extra_metadata or {}),
        )
    (run_dir / "final.json").write_text(json.dumps(result.final, indent=2) + "\n")
    return result


def _one_line(description: str, record: dict[str, Any]) -> str:
    parts = [
        f"{description} epoch {record['epoch']}",
        f"{record['samples_per_second']:.0f} samples/s",
    ]
    for key, value in record.items():
        if isinstance(value, dict) and "test" in value:
            parts.append(f"{key} test errors {value['test']['errors']}")
    return " | ".join(parts)
