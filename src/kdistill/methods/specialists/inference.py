"""Combining a generalist and its specialists at test time (Hinton et al. 2015, section 5.3).

For each test case: take the generalist's top-n classes k (n = 1 by default); the active
specialists A_k are those whose classes meet k; find the full distribution q = softmax(z) that
minimises

    KL(p^g, q) + sum_{m in A_k} KL(p^m, q)                                   (paper, eq. 5)

where p^m is specialist m's distribution over its classes plus its dustbin, and the dustbin
probability is compared with q's total mass on the classes m does not cover. The minimum is
found by gradient descent on z, for all cases of a batch at once.
"""

from __future__ import annotations

import torch

from kdistill.errors import KDistillError

__all__ = [
    "active_specialists",
    "combine",
    "combined_log_probs",
    "gradient",
    "group_membership",
    "objective",
    "specialist_targets",
]


def group_membership(groups: list[list[int]], num_classes: int) -> torch.Tensor:
    """Bool ``[M, C]``: class c belongs to specialist m."""
    member = torch.zeros(len(groups), num_classes, dtype=torch.bool)
    for index, group in enumerate(groups):
        member[index, group] = True
    return member


def active_specialists(
    generalist_probs: torch.Tensor, member: torch.Tensor, top_n: int = 1
) -> torch.Tensor:
    """Bool ``[B, M]``: specialist m covers one of the generalist's ``top_n`` classes."""
    top = generalist_probs.topk(top_n, dim=1).indices
    in_top = torch.zeros_like(generalist_probs, dtype=torch.bool).scatter_(1, top, True)
    return (in_top.float() @ member.float().T) > 0


def specialist_targets(
    specialist_probs: list[torch.Tensor],
    groups: list[list[int]],
    active: torch.Tensor,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The active specialists' probabilities in the full class space: ``inside`` ``[B, C]``,
    the summed probability each active specialist gives each of its classes, and ``dustbin``
    ``[B, M]``, each active specialist's dustbin probability (0 where inactive)."""
    batch = active.shape[0]
    inside = torch.zeros(batch, num_classes)
    dustbin = torch.zeros(batch, len(groups))
    for index, (probs, group) in enumerate(zip(specialist_probs, groups, strict=True)):
        if probs.shape != (batch, len(group) + 1):
            raise KDistillError(
                f"specialist {index} gives {list(probs.shape)} probabilities, expected "
                f"[{batch}, {len(group) + 1}] (its classes and the dustbin)"
            )
        weight = active[:, index].float()
        inside[:, group] += probs[:, :-1] * weight[:, None]
        dustbin[:, index] = probs[:, -1] * weight
    return inside, dustbin


def objective(
    z: torch.Tensor, targets: torch.Tensor, dustbin: torch.Tensor, outside: torch.Tensor
) -> torch.Tensor:
    """Per case, ``-sum_c targets_c log q_c - sum_m dustbin_m log sum_{c not in S_m} q_c``:
    eq. 5 without the entropies of p^g and p^m, which do not depend on q. ``outside`` is the
    float ``[M, C]`` indicator of the classes each specialist does not cover."""
    log_q = torch.log_softmax(z, dim=1)
    mass_outside = (log_q.exp() @ outside.T).clamp_min(1e-30)
    return -(targets * log_q).sum(dim=1) - (dustbin * mass_outside.log()).sum(dim=1)


def gradient(
    z: torch.Tensor, targets: torch.Tensor, dustbin: torch.Tensor, outside: torch.Tensor
) -> torch.Tensor:
    """d objective / dz, in closed form: with q = softmax(z) and Q_m = q's mass outside S_m,
    ``(sum targets + sum dustbin) q - targets - q * sum_m (dustbin_m / Q_m) [c not in S_m]``."""
    q = torch.softmax(z, dim=1)
    mass_outside = (q @ outside.T).clamp_min(1e-30)
    weight = targets.sum(dim=1, keepdim=True) + dustbin.sum(dim=1, keepdim=True)
    return weight * q - targets - q * ((dustbin / mass_outside) @ outside)


def combine(
    generalist_log_probs: torch.Tensor,
    specialist_probs: list[torch.Tensor],
    groups: list[list[int]],
    active: torch.Tensor,
    *,
    steps: int = 500,
    lr: float = 1.0,
    tolerance: float = 1e-6,
) -> torch.Tensor:
    """``log q`` ``[B, C]`` minimising eq. 5 for every case of the batch.

    Gradient descent on z from z = log p^g with Nesterov momentum 0.9; case b's step is
    ``lr / (1 + |A_b|)`` (its objective is a sum of ``1 + |A_b|`` cross-entropies, each of
    curvature at most 1 in z). Stops early once no gradient entry exceeds ``tolerance``. A case
    with no active specialist keeps q = p^g exactly (its gradient is zero from the start).
    """
    num_classes = generalist_log_probs.shape[1]
    member = group_membership(groups, num_classes)
    inside, dustbin = specialist_targets(specialist_probs, groups, active, num_classes)
    targets = generalist_log_probs.exp() + inside
    outside = (~member).float()
    z = generalist_log_probs.clone()
    rows = active.any(dim=1)
    if not bool(rows.any()):
        return torch.log_softmax(z, dim=1)
    zr, tr, dr = z[rows], targets[rows], dustbin[rows]
    step = (lr / (1.0 + active[rows].float().sum(dim=1)))[:, None]
    velocity = torch.zeros_like(zr)
    for _ in range(steps):
        slope = gradient(zr + 0.9 * velocity, tr, dr, outside)
        if float(slope.abs().max()) < tolerance:
            break
        velocity = 0.9 * velocity - step * slope
        zr = zr + velocity
    z[rows] = zr
    return torch.log_softmax(z, dim=1)


@torch.no_grad()
def combined_log_probs(
    generalist_logits: torch.Tensor,
    specialist_logits: list[torch.Tensor],
    groups: list[list[int]],
    *,
    top_n: int = 1,
    steps: int = 500,
    lr: float = 1.0,
    chunk: int = 4000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The combined ``log q`` ``[N, C]`` and the active specialists ``[N, M]`` for the logits
    of the generalist ``[N, C]`` and of each specialist ``[N, |S_m| + 1]``, in chunks."""
    member = group_membership(groups, generalist_logits.shape[1])
    outputs, actives = [], []
    for start in range(0, len(generalist_logits), chunk):
        stop = start + chunk
        log_pg = torch.log_softmax(generalist_logits[start:stop].float(), dim=1)
        active = active_specialists(log_pg.exp(), member, top_n)
        probs = [torch.softmax(s[start:stop].float(), dim=1) for s in specialist_logits]
        outputs.append(combine(log_pg, probs, groups, active, steps=steps, lr=lr))
        actives.append(active)
    return torch.cat(outputs), torch.cat(actives)
