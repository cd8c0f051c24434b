"""Teacher logits computed once and cached on disk.

When the transfer set is not augmented the teacher sees the same images every epoch, so its
logits are computed once (large no-grad batches) and stored under a key made of the
teacher's weights, the exact images and labels, and the transform. Training then reads
``logits[:, batch.indices]`` instead of running the teacher: the same numbers, no teacher
forward passes. Augmented transfer sets use the live teacher instead.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from kdistill.data import Split
from kdistill.engine.checkpoint import load_tensors, save_tensors
from kdistill.errors import KDistillError
from kdistill.tasks import predict_logits
from kdistill.teachers.teacher import Teacher


def split_fingerprint(split: Split) -> str:
    digest = hashlib.sha256()
    digest.update(split.inputs.contiguous().numpy().tobytes())
    digest.update(split.labels.contiguous().numpy().tobytes())
    if not split.input_encoding.is_plain:
        # Keys of runs made before encodings existed (plain /255 pixels) stay valid.
        digest.update(split.input_encoding.digest().encode())
    return digest.hexdigest()


def teacher_logits_for_split(
    teacher: Teacher,
    split: Split,
    cache_dir: str | Path,
    *,
    transform: str = "none",
    batch_size: int = 2000,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``[members, N, classes]`` logits of every member on ``split``, cached on disk.

    An entry records the sha256 of its logits; one that is unreadable, of the wrong shape or
    whose content does not match its checksum (a disk fault, a hand edit, an older entry
    without one) is rebuilt, with one line on stderr saying so.
    """
    key = hashlib.sha256(
        f"{teacher.fingerprint()}|{split_fingerprint(split)}|{transform}".encode()
    ).hexdigest()[:32]
    path = Path(cache_dir) / "teacher-logits" / f"{key}.safetensors"
    if path.exists():
        logits, problem = _read_entry(path, len(teacher.members), len(split))
        if logits is not None:
            return logits
        print(f"kdistill: teacher-logit cache entry {path} {problem}: rebuilt it", file=sys.stderr)
    teacher.to(device)
    logits = torch.stack(
        [predict_logits(member, split, batch_size, device) for member in teacher.members]
    )
    save_tensors(
        path,
        {"logits": logits},
        {
            "kind": "teacher-logits",
            "transform": transform,
            "examples": len(split),
            "sha256": logits_checksum(logits),
        },
    )
    return logits


def logits_checksum(logits: torch.Tensor) -> str:
    """sha256 of the logits' bytes (float32, C order) and shape."""
    digest = hashlib.sha256(str(tuple(logits.shape)).encode())
    digest.update(logits.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def _read_entry(path: Path, members: int, examples: int) -> tuple[torch.Tensor | None, str]:
    """The entry's logits, or None and what is wrong with it."""
    try:
        tensors, saved = load_tensors(path)
    except KDistillError:
        return None, "was unreadable"
    logits = tensors.get("logits")
    if logits is None or logits.dim() != 3 or tuple(logits.shape[:2]) != (members, examples):
        shape = None if logits is None else tuple(logits.shape)
        return None, f"had shape {shape}, not ({members}, {examples}, classes)"
    if saved.get("sha256") != logits_checksum(logits):
        return None, "did not match its checksum"
    return logits, ""
