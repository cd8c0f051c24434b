"""A run's ``metrics.jsonl``: one JSON object per epoch (and, optionally, TensorBoard's
scalars), and the one line printed per epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text

__all__ = ["METRICS_NAME", "MetricsLog", "one_line"]

METRICS_NAME = "metrics.jsonl"


class MetricsLog:
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
        try:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as error:  # a full disk: the checkpoint of the epoch before is intact
            raise KDistillError(
                f"cannot append to {self.path} ({error.strerror}): free space on that disk, "
                "then rerun with --resume"
            ) from None
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
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def one_line(description: str, record: dict[str, Any]) -> str:
    """The line printed after an epoch: samples/s and each model's test errors."""
    parts = [
        f"{description} epoch {record['epoch']}",
        f"{record['samples_per_second']:.0f} samples/s",
    ]
    for key, value in record.items():
        if isinstance(value, dict) and "test" in value:
            parts.append(f"{key} test errors {value['test']['errors']}")
    return " | ".join(parts)
