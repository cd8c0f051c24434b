"""Deterministic subsets of a Split: validation hold-outs, class-restricted transfer sets, and
stratified fractions (e.g. the paper's 3% of the training set)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kdistill.data.dataset import Split
from kdistill.errors import KDistillError

__all__ = ["carve_validation", "keep_classes", "stratified_indices", "take_fraction"]


def _generator(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _allocate(counts: torch.Tensor, total: int) -> torch.Tensor:
    """Split ``total`` over classes in proportion to ``counts`` (largest-remainder method)."""
    n = int(counts.sum())
    exact = counts.double() * total / n
    quota = exact.floor().long()
    remainder = total - int(quota.sum())
    if remainder:
        # Ties go to the lower class id, so the allocation is deterministic.
        frac = exact - quota.double()
        frac[quota >= counts] = -1.0
        order = sorted(range(len(counts)), key=lambda c: (-float(frac[c]), c))
        for c in order[:remainder]:
            quota[c] += 1
    return quota


def stratified_indices(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """``size`` positions drawn at random within each class, class proportions preserved.

    Returned sorted, so the subset keeps the original example order. Dense labels (masks,
    boxes: ``[N, ...]``) have no one class per example: the draw is then uniform.
    """
    generator = _generator(seed)
    if labels.dim() > 1:
        return torch.randperm(labels.shape[0], generator=generator)[:size].sort().values
    if labels.numel() and int(labels.min()) < 0:  # unlabelled text (-100): a stratum of its own
        labels = torch.where(labels < 0, int(labels.max()) + 1, labels)
    counts = torch.bincount(labels)
    quota = _allocate(counts, size)
    # One permutation for all classes, then the first quota[c] hits of each class: the choice
    # within a class is uniform and depends only on seed.
    perm = torch.randperm(labels.shape[0], generator=generator)
    permuted_labels = labels[perm]
    chosen = []
    for c in torch.nonzero(quota).flatten().tolist():
        members = perm[permuted_labels == c]
        chosen.append(members[: int(quota[c])])
    if not chosen:
        return torch.empty(0, dtype=torch.long)
    return torch.cat(chosen).sort().values


def carve_validation(split: Split, size: int, seed: int) -> tuple[Split, Split]:
    """Hold out ``size`` examples of ``split`` (stratified by class, deterministic by seed).

    Returns (rest, validation). Pass the training split only: the test split must stay untouched.
    """
    if not 0 < size < len(split):
        raise KDistillError(
            f"validation size {size} must be between 1 and {len(split) - 1} (the training "
            f"split has {len(split)} examples): fix data.validation_size"
        )
    held = stratified_indices(split.labels, size, seed)
    mask = torch.ones(len(split), dtype=torch.bool)
    mask[held] = False
    return split.subset(mask), split.subset(held)


def keep_classes(split: Split, classes: Sequence[int]) -> Split:
    """Only the examples whose label is in ``classes`` (labels are kept, not renumbered).

    E.g. the paper's transfer set without any 3s: ``keep_classes(train, [0, 1, 2, 4, ...])``.
    """
    wanted = sorted({int(c) for c in classes})
    if not wanted:
        raise KDistillError("keep_classes got an empty class list: name at least one class")
    present = set(split.labels.unique().tolist())
    absent = [c for c in wanted if c not in present]
    if absent:
        raise KDistillError(
            f"classes {absent} do not occur in the split (it has {sorted(present)}): "
            "fix the class list"
        )
    mask = torch.isin(split.labels, torch.tensor(wanted, dtype=split.labels.dtype))
    return split.subset(mask)


def take_fraction(split: Split, fraction: float, seed: int) -> Split:
    """A stratified random ``fraction`` of ``split`` (rounded to whole examples, at least 1)."""
    if not 0.0 < fraction <= 1.0:
        raise KDistillError(f"fraction must be in (0, 1], got {fraction}: e.g. 0.03 for 3%")
    if len(split) == 0:
        raise KDistillError("take_fraction got an empty split: check the class filter before it")
    if fraction == 1.0:
        return split
    size = max(1, round(fraction * len(split)))
    return split.subset(stratified_indices(split.labels, size, seed))
