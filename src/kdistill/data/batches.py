"""Mini-batches by slicing in-memory tensors, plus the paper's random-shift jitter.

No DataLoader, workers or per-sample collation: an epoch is one permutation and B-sized
slices of it, which for MNIST is far faster than any per-example pipeline and trivially
reproducible: the batches of epoch e depend only on (seed, e), so a resumed run sees the
same data as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from kdistill.data.dataset import Split
from kdistill.errors import KDistillError

__all__ = [
    "BalancedBatchLoader",
    "Batch",
    "BatchLoader",
    "draw_shifts",
    "epoch_generator",
    "offset_codes",
    "offset_grid",
    "random_shift",
    "shift_images",
]


@dataclass
class Batch:
    """Model inputs (float32, encoded by the split's :class:`InputEncoding`: ``[B, C, H, W]``
    pixels in [0, 1] by default), int64 labels [B], and the examples' positions in their Split
    (int64 [B]), which key cached teacher logits. A jittered batch also says which shift each
    example got (``offsets``, int64 [B], codes of :func:`offset_codes`), so teacher logits
    cached for every shift can be looked up; ``None`` when the batch is not jittered."""

    inputs: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    offsets: torch.Tensor | None = None
    share: float = 1.0
    """This process's part of the global batch times the number of processes: 1.0 alone or
    when the global batch splits evenly. DistributedDataParallel averages the processes'
    gradients with equal weights, so the engine scales a process's mean loss by ``share`` to
    keep an uneven last batch the mean over its examples, as one process computes it."""
    target_mask: torch.Tensor | None = None
    """Token batches only: bool ``[B, T]``, the tokens a causal LM is trained to predict
    (a student's generated continuation, not its prompt); ``None``: every non-padding token."""

    def to(self, device: str | torch.device) -> Batch:
        """Copy of the batch on ``device``."""
        return Batch(
            inputs=self.inputs.to(device),
            labels=self.labels.to(device),
            indices=self.indices.to(device),
            offsets=None if self.offsets is None else self.offsets.to(device),
            share=self.share,
            target_mask=None if self.target_mask is None else self.target_mask.to(device),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator seeded from (seed, epoch) by hashing, so nearby pairs do not collide."""
    digest = hashlib.sha256(f"kdistill-batches:{seed}:{epoch}".encode()).digest()
    generator = torch.Generator()
    generator.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return generator


def draw_shifts(
    batch_size: int, max_shift: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent integer offsets (dx, dy), each int64 [batch_size] in [-max_shift, max_shift]."""
    offsets = torch.randint(
        -max_shift, max_shift + 1, (2, batch_size), generator=generator, device=generator.device
    )
    return offsets[0], offsets[1]


def offset_codes(dx: torch.Tensor, dy: torch.Tensor, max_shift: int) -> torch.Tensor:
    """One int64 code per shift: ``(dy + m) * (2m + 1) + (dx + m)`` for ``m = max_shift``, the
    position of ``(dx, dy)`` in :func:`offset_grid`."""
    side = 2 * max_shift + 1
    return (dy + max_shift) * side + (dx + max_shift)


def offset_grid(max_shift: int) -> list[tuple[int, int]]:
    """Every shift ``(dx, dy)`` the jitter can draw, in code order: ``(2m + 1)^2`` of them
    (25 for the paper's 2 pixels)."""
    span = range(-max_shift, max_shift + 1)
    return [(dx, dy) for dy in span for dx in span]


def shift_images(images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Translate image b by dx[b] columns right and dy[b] rows down; vacated pixels are zero.

    Vectorised: pad by the largest offset, then gather each image's window with advanced
    indexing, so the cost is one kernel launch regardless of the batch size.
    """
    if images.dim() != 4:
        raise KDistillError(
            f"shift_images expects [B, C, H, W] images, got shape {list(images.shape)}"
        )
    b, c, h, w = images.shape
    dx = dx.to(device=images.device, dtype=torch.long)
    dy = dy.to(device=images.device, dtype=torch.long)
    pad = int(max(dx.abs().max(), dy.abs().max())) if b else 0
    if pad == 0:
        return images
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    # Output pixel (y, x) reads input (y - dy, x - dx), i.e. padded (y - dy + pad, x - dx + pad).
    rows = (pad - dy)[:, None] + torch.arange(h, device=images.device)[None, :]
    cols = (pad - dx)[:, None] + torch.arange(w, device=images.device)[None, :]
    batch_idx = torch.arange(b, device=images.device)[:, None, None, None]
    chan_idx = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch_idx, chan_idx, rows[:, None, :, None], cols[:, None, None, :]]


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """The paper's jitter: shift each image by its own random (dx, dy) in [-max_shift, max_shift].

    Offsets come from ``draw_shifts(B, max_shift, generator)``. max_shift=0 returns ``images``.
    """
    if max_shift < 0:
        raise KDistillError(f"max_shift must be ≥ 0, got {max_shift}: use 0 to disable jitter")
    if max_shift == 0:
        return images
    dx, dy = draw_shifts(images.shape[0], max_shift, generator)
    return shift_images(images, dx, dy)


class BatchLoader:
    """Iterate over a Split in batches of ``batch_size``, optionally shuffled and jittered.

    Call ``set_epoch(e)`` before each epoch: the order and jitter of epoch e depend only on
    (seed, e). Without it, every iteration repeats the same epoch.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        max_shift: int = 0,
        device: str | torch.device = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise KDistillError(f"batch_size must be ≥ 1, got {batch_size}: fix data.batch_size")
        if max_shift < 0:
            raise KDistillError(f"max_shift must be ≥ 0, got {max_shift}: use 0 to disable jitter")
        if max_shift and not split.is_images:
            raise KDistillError(
                f"data.max_shift={max_shift} jitters images, but the inputs are "
                f"{split.inputs.dtype} {list(split.inputs.shape[1:])} features: set data.max_shift=0"
            )
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.max_shift = max_shift
        self.device = torch.device(device)
        self.epoch = 0
        if not 0 <= rank < world_size:
            raise KDistillError(f"rank {rank} is outside a world of {world_size} processes")
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation and jitter the next iteration produces."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.split)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.split)
        generator = epoch_generator(self.seed, self.epoch)
        if self.shuffle:
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        stop = len(self) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            yield self.batch(order[start : start + self.batch_size], generator)

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> Batch:
        """This process's share of the global batch at positions ``index`` (int64, CPU),
        encoded and jittered on the device.

        The global batch (and its jitter) is drawn whatever the number of processes; each
        rank takes a contiguous share, so N processes see exactly the examples one process
        sees in the same step.
        """
        stored, labels = self.split.inputs, self.split.labels
        encoding = self.split.input_encoding
        size = len(index)
        low = self.rank * size // self.world_size
        high = (self.rank + 1) * size // self.world_size
        mine = index[low:high]
        # Index on the split's own device so a GPU-resident split never round-trips to CPU.
        on_data = mine.to(stored.device)
        # Move uint8 before converting: 4x less host-to-device traffic than float32.
        inputs = encoding.scale(stored[on_data].to(self.device))
        offsets = None
        if self.max_shift:
            # Shift before normalising, so vacated pixels are black, not the mean.
            dx, dy = draw_shifts(size, self.max_shift, generator)
            dx, dy = dx[low:high], dy[low:high]
            inputs = shift_images(inputs, dx, dy)
            offsets = offset_codes(dx, dy, self.max_shift).to(self.device)
        inputs = encoding.finish(inputs)
        return Batch(
            inputs=inputs,
            labels=labels[on_data].to(self.device),
            indices=mine.to(self.device),
            offsets=offsets,
            share=(high - low) * self.world_size / size if size else 1.0,
        )


class BalancedBatchLoader(BatchLoader):
    """Batches whose first ``round(share * batch_size)`` examples come from ``inside`` (a bool
    mask over the split) and the rest are drawn at random from the other examples.

    Hinton et al. (2015), section 5: "half its examples coming from its special subset and half
    sampled at random from the remainder of the training set". An epoch visits every inside
    example once, in an order fixed by ``(seed, epoch)``; the outside examples of an epoch are
    a random draw without replacement (repeated when the outside is too small).
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        inside: torch.Tensor,
        *,
        share: float = 0.5,
        seed: int = 0,
        max_shift: int = 0,
        device: str | torch.device = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(
            split,
            batch_size,
            shuffle=True,
            seed=seed,
            max_shift=max_shift,
            device=device,
            rank=rank,
            world_size=world_size,
        )
        if inside.dtype != torch.bool or inside.shape != (len(split),):
            raise KDistillError(f"inside must be a bool mask of {len(split)} examples")
        self.inside = torch.nonzero(inside.cpu()).flatten()
        self.outside = torch.nonzero(~inside.cpu()).flatten()
        self.per_inside = min(batch_size, max(1, round(share * batch_size)))
        self.per_outside = batch_size - self.per_inside
        if not len(self.inside) or (self.per_outside and not len(self.outside)):
            raise KDistillError(
                f"a balanced batch needs examples inside ({len(self.inside)}) and outside "
                f"({len(self.outside)}) the subset"
            )

    def __len__(self) -> int:
        return -(-len(self.inside) // self.per_inside)

    def __iter__(self) -> Iterator[Batch]:
        generator = epoch_generator(self.seed, self.epoch)
        inside = self.inside[torch.randperm(len(self.inside), generator=generator)]
        needed = len(self) * self.per_outside
        rounds = -(-needed // max(len(self.outside), 1)) if needed else 0
        outside = torch.cat(
            [
                self.outside[torch.randperm(len(self.outside), generator=generator)]
                for _ in range(rounds)
            ]
            or [self.outside[:0]]
        )
        for step in range(len(self)):
            index = torch.cat(
                [
                    inside[step * self.per_inside : (step + 1) * self.per_inside],
                    outside[step * self.per_outside : (step + 1) * self.per_outside],
                ]
            )
            yield self.batch(index, generator)
