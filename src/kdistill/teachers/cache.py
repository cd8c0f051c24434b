"""Teacher logits computed once and cached on disk.

When the transfer set is not augmented the teacher sees the same images every epoch, so its
logits are computed once (large no-grad batches) and stored under a key made of the
teacher's weights, the exact images and labels, and the augmentation. Training then reads
``logits[:, batch.indices]`` instead of running the teacher: the same numbers, no teacher
forward passes.

The paper's jitter is discrete: each image is shifted by one of ``(2m + 1)^2`` offsets (25 for
``m = 2``). So a jittered transfer set keeps the cache too: the teacher runs once per offset
on every image (``[members, offsets, N, classes]``, ~60 MB for MNIST) and training reads
``logits[:, batch.offsets, batch.indices]``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch
from torch import nn

from kdistill.data import Batch, Split, offset_grid
from kdistill.engine.checkpoint import load_tensors, save_tensors
from kdistill.engine.distributed import Processes, processes
from kdistill.errors import KDistillError
from kdistill.losses.causal_lm import teacher_top_k
from kdistill.losses.hooks import FeatureCapture
from kdistill.tasks import predict_logits
from kdistill.teachers.teacher import Teacher

SHIFTED_BATCH = 256


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
    max_shift: int = 0,
    batch_size: int = 2000,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``[members, N, classes]`` logits of every member on ``split``, cached on disk; with
    ``max_shift > 0``, ``[members, offsets, N, classes]``: every image under every shift of
    :func:`~kdistill.data.offset_grid`, in its code order (see :class:`~kdistill.data.Batch`).

    An entry records the sha256 of its logits; one that is unreadable, of the wrong shape or
    whose content does not match its checksum (a disk fault, a hand edit, an older entry
    without one) is rebuilt, with one line on stderr saying so.
    """
    # "none": the key of every unaugmented entry written before shifts were cached.
    augmentation = f"shift:{max_shift}" if max_shift else "none"
    key = hashlib.sha256(
        f"{teacher.fingerprint()}|{split_fingerprint(split)}|{augmentation}".encode()
    ).hexdigest()[:32]
    shifts = offset_grid(max_shift) if max_shift else [(0, 0)]
    path = Path(cache_dir) / "teacher-logits" / f"{key}.safetensors"
    procs = processes(torch.device(device))
    cached, problem = None, ""
    if path.exists():
        leading = (len(teacher.members), len(shifts)) if max_shift else (len(teacher.members),)
        cached, problem = _read_entry(path, leading, len(split))
    # Every process must take the same branch (the gather below is collective).
    if int(procs.sum(torch.tensor(int(cached is not None)))) == procs.world_size:
        assert cached is not None
        return cached
    if problem and procs.is_main:
        print(f"kdistill: teacher-logit cache entry {path} {problem}: rebuilt it", file=sys.stderr)
    teacher.to(device)
    # The 25 passes of a jittered cache go in batches of at most SHIFTED_BATCH: measured here, a
    # CNN teacher ran 2.4x slower per image at batch 2000 than at 128-256 (cache-bound
    # convolutions). Unshifted entries keep ``batch_size``, so their bits stay as they were.
    chunk = min(batch_size, SHIFTED_BATCH) if max_shift else batch_size
    # Under torchrun each process computes its shard; the shards are gathered once.
    count = len(split)
    low, high = procs.rank * count // procs.world_size, (procs.rank + 1) * count // procs.world_size
    shard = split.subset(torch.arange(low, high))
    logits = torch.stack(
        [
            torch.stack([predict_logits(member, shard, chunk, device, s) for s in shifts])
            for member in teacher.members
        ]
    )
    if not max_shift:
        logits = logits[:, 0]
    if procs.distributed:
        logits = _gather_shards(logits, procs, count)
    if procs.is_main:
        save_tensors(
            path,
            {"logits": logits},
            {
                "kind": "teacher-logits",
                "augmentation": augmentation,
                "examples": count,
                "sha256": logits_checksum(logits),
            },
        )
    return logits


def cached_logits_of_batch(cached: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``[members, B, classes]``: the cached logits of the batch's examples, under the shift
    each one got when the cache holds every shift."""
    indices = batch.indices.to(cached.device)
    if cached.dim() == 3:
        return cached[:, indices]
    if batch.offsets is None:
        raise KDistillError(
            "the teacher's logits were cached for every shift but this batch is not jittered: "
            "keep data.max_shift as the cache was built, or set cache_teacher_logits=never"
        )
    return cached[:, batch.offsets.to(cached.device), indices]


def _gather_shards(logits: torch.Tensor, procs: Processes, count: int) -> torch.Tensor:
    """Concatenate every process's ``[..., shard, classes]`` logits in rank order."""
    largest = -(-count // procs.world_size)
    padded = logits.new_zeros(*logits.shape[:-2], largest, logits.shape[-1])
    padded[..., : logits.shape[-2], :] = logits
    pieces = procs.gather(padded)
    sizes = [
        (rank + 1) * count // procs.world_size - rank * count // procs.world_size
        for rank in range(procs.world_size)
    ]
    return torch.cat(
        [piece[..., :size, :] for piece, size in zip(pieces, sizes, strict=True)], dim=-2
    )


def logits_checksum(logits: torch.Tensor) -> str:
    """sha256 of the logits' bytes (float32, C order) and shape."""
    digest = hashlib.sha256(str(tuple(logits.shape)).encode())
    digest.update(logits.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def _read_entry(
    path: Path, leading: tuple[int, ...], examples: int
) -> tuple[torch.Tensor | None, str]:
    """The entry's logits, or None and what is wrong with it."""
    try:
        tensors, saved = load_tensors(path)
    except KDistillError:
        return None, "was unreadable"
    logits = tensors.get("logits")
    expected = (*leading, examples)
    if logits is None or logits.dim() != len(expected) + 1 or tuple(logits.shape[:-1]) != expected:
        shape = None if logits is None else tuple(logits.shape)
        return None, f"had shape {shape}, not ({', '.join(map(str, expected))}, classes)"
    if saved.get("sha256") != logits_checksum(logits):
        return None, "did not match its checksum"
    return logits, ""


@torch.no_grad()
def teacher_features_for_split(
    model: nn.Module,
    split: Split,
    paths: list[tuple[str, str]],
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict[tuple[str, str], torch.Tensor]:
    """The tensors a frozen teacher produces at ``paths`` (``(module path, kind)``) for every
    example of ``split``, stacked ``[N, ...]`` in split order, in memory.

    For a transfer set without augmentation the teacher's features are the same every epoch,
    so feature terms (TinyBERT, MiniLM, FitNet ...) can read them like cached logits instead
    of running the teacher each step. Token inputs are passed at the split's full length: a
    batch cut after its last real token reads the first positions (padding is masked, so the
    real positions do not depend on it).
    """
    was_training = model.training
    model.eval().to(device)
    pieces: dict[tuple[str, str], list[torch.Tensor]] = {request: [] for request in paths}
    encoding = split.input_encoding
    with FeatureCapture(model, paths) as capture:
        for start in range(0, len(split), batch_size):
            chunk = split.inputs[start : start + batch_size].to(device)
            model(encoding.encode(chunk))
            for request in paths:
                pieces[request].append(capture.get(*request).detach().float().cpu())
            capture.clear()
    model.train(was_training)
    return {request: torch.cat(chunks) for request, chunks in pieces.items()}


TOP_K_SHARD = 256
"""Examples per top-k shard file: a killed computation resumes at the first missing shard."""


@torch.no_grad()
def teacher_top_k_for_split(
    teacher: Teacher,
    split: Split,
    cache_dir: str | Path,
    *,
    k: int,
    temperature: float = 1.0,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A causal LM teacher's ``k`` largest next-token log-probabilities at ``temperature``
    and their ids for every position of every text of ``split``: ``[N, T, k]`` float32 and
    int64, the split's full length (a trimmed batch reads its first positions).

    Computed once in large no-grad batches and stored in shards of :data:`TOP_K_SHARD` texts
    under ``<cache>/teacher-top-k/<key>/`` (key: teacher weights, split, ``k``,
    ``temperature``); each shard is written atomically with a checksum, so an interrupted
    computation resumes at the first missing or damaged shard. Under torchrun the processes
    compute the missing shards in turns (shard ``i`` by rank ``i mod N``), wait for each
    other, and every process reads them all (the cache folder must be one every node sees).
    """
    key = hashlib.sha256(
        f"{teacher.fingerprint()}|{split_fingerprint(split)}|{k}|{temperature}".encode()
    ).hexdigest()[:32]
    folder = Path(cache_dir) / "teacher-top-k" / key
    model = teacher.members[0] if len(teacher.members) == 1 else teacher
    model.eval().to(device)
    procs = processes(torch.device(device))
    firsts = list(range(0, len(split), TOP_K_SHARD))
    shards: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for number, first in enumerate(firsts):
        stop = min(first + TOP_K_SHARD, len(split))
        if number % procs.world_size != procs.rank:
            continue
        path = folder / f"shard-{number:05d}.safetensors"
        found = _read_top_k(path, stop - first)
        if found is not None:  # finished before (a resumed computation): read once, kept
            shards[number] = found
            continue
        pieces = []
        for start in range(first, stop, batch_size):
            logits = model(split.inputs[start : min(start + batch_size, stop)].to(device))
            if logits.dim() == 4:  # an ensemble's stacked members: their mean logits
                logits = logits.mean(dim=0)
            pieces.append(teacher_top_k(logits, k, temperature))
        shards[number] = (
            torch.cat([p[0] for p in pieces]).cpu(),
            torch.cat([p[1] for p in pieces]).cpu(),
        )
        save_tensors(
            path,
            {"log_probs": shards[number][0], "ids": shards[number][1]},
            {"kind": "teacher-top-k", "examples": stop - first, "k": k},
        )
    procs.barrier()  # every shard is on disk before any process reads another's
    values, indices = [], []
    for number, first in enumerate(firsts):
        path = folder / f"shard-{number:05d}.safetensors"
        shard = shards.get(number) or _read_top_k(path, min(TOP_K_SHARD, len(split) - first))
        if shard is None:
            raise KDistillError(f"teacher top-k shard {path} is missing or damaged: run again")
        values.append(shard[0])
        indices.append(shard[1])
    return torch.cat(values), torch.cat(indices)


def _read_top_k(path: Path, examples: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A finished top-k shard of ``examples`` texts, or None (absent, damaged, another size)."""
    if not path.exists():
        return None
    try:
        tensors, saved = load_tensors(path)
    except KDistillError:
        return None
    if saved.get("examples") != examples or not {"log_probs", "ids"} <= set(tensors):
        return None
    return tensors["log_probs"], tensors["ids"]
