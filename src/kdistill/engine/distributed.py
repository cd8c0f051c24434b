"""Several processes, one run: torch.distributed as torchrun sets it up.

``torchrun --nproc_per_node N kdistill distill ...`` (or ``--nnodes``, with torchrun's own
rendezvous) starts N copies of the same command; each reads RANK, WORLD_SIZE and LOCAL_RANK
from the environment. Each process takes its share of every global batch
(:class:`~kdistill.data.BatchLoader` with ``rank``/``world_size``), gradients are averaged by
DistributedDataParallel, and only rank 0 writes files. Without torchrun this is one process
and nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from kdistill.errors import KDistillError

__all__ = [
    "Processes",
    "is_main_process",
    "leave_process_group",
    "processes",
    "under_torchrun",
    "wait_for_main",
]


@dataclass(frozen=True)
class Processes:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes metrics, checkpoints, models and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` in every process (a collective: every process must call it)."""
        if not self.distributed:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """``tensor`` of every process, by rank (same shape everywhere)."""
        if not self.distributed:
            return [tensor]
        gathered = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(gathered, tensor.contiguous())
        return gathered

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The elementwise sum of ``tensor`` over every process (itself when alone)."""
        if self.distributed:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor


def processes(device: torch.device) -> Processes:
    """This process's rank and world from torchrun's environment; starts the process group
    (gloo on CPUs, NCCL on CUDA) the first time it is asked."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as error:
            raise KDistillError(
                f"cannot join the {world_size}-process run ({str(error).splitlines()[0]}): "
                "start it with torchrun, which sets MASTER_ADDR and MASTER_PORT"
            ) from None
    return Processes(rank, world_size, local_rank)


def is_main_process() -> bool:
    """Rank 0 of a torchrun run, or a process started alone: the one that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def under_torchrun() -> bool:
    """Started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def wait_for_main() -> None:
    """Every process waits here until all reach it (rank 0 has written what the others read
    next); nothing when alone or before the process group started."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def leave_process_group(finished: bool) -> None:
    """Tear the process group down while the interpreter is still whole; nothing when alone.

    A process that exits with the group still up leaves gloo's worker threads holding tensors
    that interpreter shutdown then frees without the GIL, and the process aborts (SIGABRT)
    after the run has finished: torchrun reports the whole run failed. ``finished`` runs wait
    for the others first, so no process leaves while another is still in a collective; a
    failed one leaves at once (the others may never reach a barrier; torchrun stops them).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if finished:
        dist.barrier()
    dist.destroy_process_group()
