"""The loop users write by hand, the yardstick of ``kdistill bench speed``.

Written from the seed's recipe (``../shared/seeds/``: ``nn.KLDivLoss()(F.log_softmax(outputs/T),
F.softmax(teacher_outputs/T)) * (alpha * T * T) + F.cross_entropy(outputs, labels) * (1 -
alpha)``) the way a tutorial runs it: a ``DataLoader`` over a ``TensorDataset`` of float
images, the teacher run on every batch, SGD with momentum. It is kept deliberately plain:
it is what kdistill must beat, not a second engine.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def hand_written_epoch(
    teacher: nn.Module,
    student: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    temperature: float,
    alpha: float,
    lr: float,
    seed: int = 0,
) -> float:
    """Train ``student`` for one epoch against ``teacher`` on float ``images`` in [0, 1];
    returns samples per second."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        TensorDataset(images, labels), batch_size=batch_size, shuffle=True, generator=generator
    )
    optimizer = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9)
    # The seed writes nn.KLDivLoss() (reduction "mean", which torch now warns about); "batchmean"
    # is the KL divergence it means and costs the same.
    kl_divergence = nn.KLDivLoss(reduction="batchmean")
    teacher.eval()
    student.train()
    seen = 0
    started = time.perf_counter()
    for inputs, targets in loader:
        outputs = student(inputs)
        with torch.no_grad():
            teacher_outputs = teacher(inputs)
        loss = kl_divergence(
            F.log_softmax(outputs / temperature, dim=1),
            F.softmax(teacher_outputs / temperature, dim=1),
        ) * (alpha * temperature * temperature) + F.cross_entropy(outputs, targets) * (1.0 - alpha)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(targets)
    return seen / (time.perf_counter() - started)
