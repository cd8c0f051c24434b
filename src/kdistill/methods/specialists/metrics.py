"""The paper's measures of a generalist + specialists ensemble (Hinton et al. 2015, Tables 3, 4)."""

from __future__ import annotations

from typing import Any

import torch

from kdistill.methods.specialists.inference import group_membership

__all__ = ["conditional_accuracy", "gain_by_coverage", "table_3_row"]


def conditional_accuracy(
    log_probs: torch.Tensor, labels: torch.Tensor, groups: list[list[int]]
) -> float:
    """Accuracy on the examples whose true class some specialist covers, each prediction
    restricted to the covered classes (the paper's "conditional test accuracy")."""
    covered = group_membership(groups, log_probs.shape[1]).any(dim=0)
    rows = covered[labels]
    if not bool(rows.any()):
        return float("nan")
    restricted = log_probs[rows].masked_fill(~covered[None], float("-inf"))
    return float((restricted.argmax(dim=1) == labels[rows]).float().mean())


def table_3_row(log_probs: torch.Tensor, labels: torch.Tensor, groups: list[list[int]]) -> dict:
    """Test accuracy and conditional accuracy of one system."""
    return {
        "accuracy": float((log_probs.argmax(dim=1) == labels).float().mean()),
        "conditional_accuracy": conditional_accuracy(log_probs, labels, groups),
    }


def gain_by_coverage(
    generalist: torch.Tensor,
    combined: torch.Tensor,
    labels: torch.Tensor,
    groups: list[list[int]],
    *,
    cap: int = 10,
) -> list[dict[str, Any]]:
    """Table 4: test examples grouped by how many specialists cover their true class (``cap``
    and more together), with the change in the number of correct top-1 predictions and that
    change relative to the generalist's correct ones."""
    member = group_membership(groups, generalist.shape[1])
    coverage = member.sum(dim=0)[labels].clamp_max(cap)
    right_g = generalist.argmax(dim=1) == labels
    right_c = combined.argmax(dim=1) == labels
    rows = []
    for count in range(int(coverage.max()) + 1 if len(labels) else 0):
        rows_here = coverage == count
        base = int(right_g[rows_here].sum())
        change = int(right_c[rows_here].sum()) - base
        rows.append(
            {
                "specialists": f"{count}+" if count == cap else str(count),
                "examples": int(rows_here.sum()),
                "generalist_correct": base,
                "change": change,
                "relative": change / base if base else 0.0,
            }
        )
    return rows
