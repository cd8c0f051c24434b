"""Which classes each specialist covers, found without labels (Hinton et al. 2015, section 5).

"We apply a clustering algorithm to the covariance matrix of the predictions of our generalist
model, so that a set of classes S^m that are often predicted together will be used as targets
for one of our specialist models m. We applied an on-line version of the K-means algorithm to
the columns of the covariance matrix." The predictions are the generalist's probabilities on a
split carved from the training data (never the test set); no label is read.
"""

from __future__ import annotations

import torch

from kdistill.errors import KDistillError

__all__ = [
    "class_groups",
    "confusion_inside_groups",
    "minibatch_kmeans",
    "prediction_covariance",
]


def prediction_covariance(probabilities: torch.Tensor) -> torch.Tensor:
    """Covariance ``[C, C]`` of the predicted class probabilities ``[N, C]`` over examples."""
    if probabilities.dim() != 2 or probabilities.shape[0] < 2:
        raise KDistillError(
            f"the covariance needs probabilities [N >= 2, classes], got {list(probabilities.shape)}"
        )
    values = probabilities.double()
    centred = values - values.mean(dim=0, keepdim=True)
    return (centred.T @ centred / (values.shape[0] - 1)).float()


def _squared_distances(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``[P, K]`` squared Euclidean distances (torch.cdist is slow on tiny inputs under load)."""
    return (points[:, None, :] - centres[None, :, :]).pow(2).sum(dim=2)


def _kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next centre drawn with probability proportional to the squared
    distance to the nearest centre already chosen."""
    first = int(torch.randint(len(points), (1,), generator=generator))
    centres = [points[first]]
    nearest = (points - centres[0]).pow(2).sum(dim=1)
    for _ in range(1, k):
        weights = nearest.double()
        if float(weights.sum()) <= 0:
            pick = int(torch.randint(len(points), (1,), generator=generator))
        else:
            pick = int(torch.multinomial(weights / weights.sum(), 1, generator=generator))
        centres.append(points[pick])
        nearest = torch.minimum(nearest, (points - points[pick]).pow(2).sum(dim=1))
    return torch.stack(centres)


def minibatch_kmeans(
    points: torch.Tensor,
    k: int,
    *,
    batch_size: int = 32,
    iterations: int = 300,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """On-line (mini-batch) K-means (Sculley, WWW 2010) of ``points`` ``[P, D]``; returns the
    centres ``[k, D]`` and each point's cluster ``[P]``.

    Each iteration draws ``batch_size`` points, assigns them to their nearest centre and moves
    that centre towards each with step ``1 / (points it has seen)``, i.e. to the running mean of
    every point assigned to it so far. Deterministic in ``seed``.
    """
    if not 1 <= k <= len(points):
        raise KDistillError(f"K-means needs 1 <= k <= {len(points)} points, got k={k}")
    generator = torch.Generator().manual_seed(seed)
    points = points.double()
    centres = _kmeans_plus_plus(points, k, generator)
    seen = torch.zeros(k, dtype=torch.float64)
    for _ in range(iterations):
        batch = points[
            torch.randint(len(points), (min(batch_size, len(points)),), generator=generator)
        ]
        assigned = _squared_distances(batch, centres).argmin(dim=1)
        # Sculley's per-point step 1/count keeps each centre the running mean of the points
        # assigned to it so far, so a batch's updates add up to this one step.
        counts = torch.bincount(assigned, minlength=k).double()
        sums = torch.zeros_like(centres).index_add_(0, assigned, batch)
        moved = counts > 0
        centres[moved] = (centres[moved] * seen[moved, None] + sums[moved]) / (
            seen[moved] + counts[moved]
        )[:, None]
        seen += counts
    assignment = _squared_distances(points, centres).argmin(dim=1)
    return centres.float(), assignment


def class_groups(
    covariance: torch.Tensor,
    num_groups: int,
    *,
    classes_per_group: int | None = None,
    overlap: bool = True,
    normalize: bool = True,
    seed: int = 0,
    batch_size: int = 32,
    iterations: int = 300,
) -> list[list[int]]:
    """The specialists' class sets: K-means on the columns of ``covariance``.

    ``classes_per_group`` None: each group is one cluster (disjoint, sizes as found).
    Otherwise each group holds that many classes: with ``overlap`` the classes whose columns lie
    nearest its centre (a class may be in several groups, as in the paper, or in none); without,
    classes are dealt out nearest-first to centres with room left, so the groups are disjoint.
    Groups are returned sorted, largest first, empty clusters dropped.

    ``normalize`` scales each column to unit length first (cosine K-means). The paper clusters
    the raw columns; there a column's length is dominated by its class's own variance, so the
    classes the generalist predicts with little confidence have short columns near the origin,
    close to every centre, and join every group. Unit columns compare what a class is
    predicted together with, which is what the groups are for.
    """
    columns = covariance.T.contiguous()
    if normalize:
        columns = columns / columns.norm(dim=1, keepdim=True).clamp_min(1e-12)
    count = columns.shape[0]
    centres, assignment = minibatch_kmeans(
        columns, num_groups, batch_size=batch_size, iterations=iterations, seed=seed
    )
    if classes_per_group is None:
        groups = [torch.nonzero(assignment == g).flatten().tolist() for g in range(num_groups)]
    else:
        if not 1 <= classes_per_group <= count:
            raise KDistillError(
                f"classes_per_specialist must be in 1..{count}, got {classes_per_group}"
            )
        distances = _squared_distances(centres.double(), columns.double())  # [groups, classes]
        if overlap:
            groups = distances.argsort(dim=1)[:, :classes_per_group].tolist()
        else:
            if classes_per_group * num_groups > count:
                raise KDistillError(
                    f"{num_groups} disjoint groups of {classes_per_group} need "
                    f"{num_groups * classes_per_group} classes, there are {count}: allow overlap"
                )
            groups = [[] for _ in range(num_groups)]
            taken: set[int] = set()
            for flat in distances.flatten().argsort().tolist():
                group, label = divmod(flat, count)
                if label not in taken and len(groups[group]) < classes_per_group:
                    groups[group].append(label)
                    taken.add(label)
    unique = {tuple(sorted(group)) for group in groups if group}
    return [list(group) for group in sorted(unique, key=lambda g: (-len(g), g))]


def confusion_inside_groups(confusion: torch.Tensor, groups: list[list[int]]) -> list[dict]:
    """For each group, where the generalist's mistakes on its classes go: the share of those
    errors predicted as another class of the same group, beside what uniform mistakes give
    (``(|group| - 1) / (C - 1)``). ``confusion`` is ``[true, predicted]`` counts."""
    classes = confusion.shape[0]
    errors = confusion.clone()
    errors.fill_diagonal_(0)
    rows = []
    for group in groups:
        inside = errors[group][:, group].sum()
        total = errors[group].sum()
        rows.append(
            {
                "classes": group,
                "errors": int(total),
                "errors_inside": int(inside),
                "share_inside": round(float(inside) / max(int(total), 1), 4),
                "share_if_uniform": round((len(group) - 1) / (classes - 1), 4),
            }
        )
    return rows
