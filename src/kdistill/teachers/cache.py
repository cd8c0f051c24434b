"""Teacher logits computed once and cached on disk.

When the transfer set is not augmented the teacher sees the same images every epoch, so its
logits are computed once (large no-grad batches) and stored under a key made of the
teacher's weights, the exact images and labels, and the transform. Training then reads
``logits[:, batch.indices]`` instead of running the teacher: the same numbers, no teacher
forward passes. Augmented transfer sets use the live teacher instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from kdistill.data import Split
from kdistill.engine.checkpoint import load_tensors, save_tensors
from kdistill.engine.distributed import Processes, processes
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
    """``[members, N, classes]`` logits of every member on ``split``, cached on disk."""
    key = hashlib.sha256(
        f"{teacher.fingerprint()}|{split_fingerprint(split)}|{transform}".encode()
    ).hexdigest()[:32]
    path = Path(cache_dir) / "teacher-logits" / f"{key}.safetensors"
    procs = processes(torch.device(device))
    # Every process must take the same branch (the gather below is collective).
    if int(procs.sum(torch.tensor(int(path.exists())))) == procs.world_size:
        tensors, _ = load_tensors(path)
        return tensors["logits"]
    teacher.to(device)
    # Under torchrun each process computes its shard; the shards are gathered once.
    count = len(split)
    low, high = procs.rank * count // procs.world_size, (procs.rank + 1) * count // procs.world_size
    shard = split.subset(torch.arange(low, high))
    logits = torch.stack(
        [predict_logits(member, shard, batch_size, device) for member in teacher.members]
    )
    if procs.distributed:
        logits = _gather_shards(logits, procs, count)
    if procs.is_main:
        save_tensors(
            path,
            {"logits": logits},
            {"kind": "teacher-logits", "transform": transform, "examples": count},
        )
    return logits


def _gather_shards(logits: torch.Tensor, procs: Processes, count: int) -> torch.Tensor:
    """Concatenate every process's ``[members, shard, classes]`` logits in rank order."""
    largest = -(-count // procs.world_size)
    padded = torch.zeros(logits.shape[0], largest, logits.shape[2], dtype=logits.dtype)
    padded[:, : logits.shape[1]] = logits
    pieces = procs.gather(padded)
    sizes = [
        (rank + 1) * count // procs.world_size - rank * count // procs.world_size
        for rank in range(procs.world_size)
    ]
    return torch.cat([piece[:, :size] for piece, size in zip(pieces, sizes, strict=True)], dim=1)
