"""Losses that match relations among the examples of a batch, not the examples themselves.

* RKD -- W. Park, D. Kim, Y. Lu, M. Cho, "Relational Knowledge Distillation", CVPR 2019,
  section 3.2. Distance-wise: ``psi_D(t_i, t_j) = ||t_i - t_j||_2 / mu`` with ``mu`` the mean
  distance over the batch's pairs, compared with the Huber loss ``l_delta`` (``delta = 1``).
  Angle-wise: ``psi_A(t_i, t_j, t_k) = <e_ij, e_kj>`` with ``e_ij = (t_i - t_j) /
  ||t_i - t_j||_2``, the cosine of the angle at ``t_j``, also compared with the Huber loss.
* SP -- F. Tung, G. Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019,
  eqs. 2-4: for the ``b`` flattened activations ``Q`` of a batch, ``G = row_normalise(Q Q^T)``
  and ``L_SP = 1/b^2 ||G_T - G_S||_F^2``.

Because relations are compared, student and teacher features may have different sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, LossTerm, TermContext, register_term
from kdistill.losses.feature_terms import FeaturePair, captured_feature, check_path

_TINY = 1e-12


def normalised_pair_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """RKD ``psi_D`` for every ordered pair ``i != j``: distance over the mean distance.

    ``embeddings`` is ``[B, ...]`` (flattened per example); returns ``[B * (B - 1)]``. The
    mean ``mu`` is over the nonzero distances, as in the authors' code (``t_d[t_d > 0].mean()``):
    two coinciding embeddings (a repeated image, dead features) do not shrink it.
    """
    flat = embeddings.flatten(1)
    batch = flat.shape[0]
    off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=flat.device)
    differences = (flat[:, None, :] - flat[None, :, :])[off_diagonal]
    squared = differences.pow(2).sum(dim=-1)
    distances = squared.clamp_min(_TINY).sqrt()
    nonzero = (squared > 0).to(distances.dtype)
    mean = (distances * nonzero).sum() / nonzero.sum().clamp_min(1)  # no host sync
    return distances / mean.clamp_min(_TINY)


def triplet_angle_cosines(embeddings: torch.Tensor) -> torch.Tensor:
    """RKD ``psi_A = <e_ij, e_kj>`` for every triplet of distinct ``i, j, k``.

    ``embeddings`` is ``[B, ...]``; returns ``[B * (B - 1) * (B - 2)]`` cosines of the angle
    at vertex ``j`` between the directions to ``i`` and to ``k``.
    """
    flat = embeddings.flatten(1)
    batch = flat.shape[0]
    # directions[j, i] = t_i - t_j, the edge from vertex j to i, made unit length
    directions = flat[None, :, :] - flat[:, None, :]
    lengths = directions.pow(2).sum(dim=-1, keepdim=True).clamp_min(_TINY).sqrt()
    unit = directions / lengths
    cosines = unit @ unit.transpose(1, 2)  # cosines[j, i, k] = <e_ij, e_kj>
    index = torch.arange(batch, device=flat.device)
    j, i, k = index[:, None, None], index[None, :, None], index[None, None, :]
    distinct = (i != j) & (k != j) & (i != k)
    return cosines[distinct]


def _zero_with_graph(tensor: torch.Tensor) -> torch.Tensor:
    return (tensor * 0).sum()


def rkd_distance_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD-D: Huber loss (``delta = 1``) between student and teacher ``psi_D``, mean over pairs.

    Needs at least 2 examples; a smaller batch gives 0.
    """
    if student.shape[0] < 2:
        return _zero_with_graph(student)
    return F.smooth_l1_loss(
        normalised_pair_distances(student),
        normalised_pair_distances(teacher.detach()),
        beta=1.0,
    )


def rkd_angle_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD-A: Huber loss (``delta = 1``) between student and teacher ``psi_A``, mean over
    triplets of distinct examples. Needs at least 3 examples; a smaller batch gives 0."""
    if student.shape[0] < 3:
        return _zero_with_graph(student)
    return F.smooth_l1_loss(
        triplet_angle_cosines(student), triplet_angle_cosines(teacher.detach()), beta=1.0
    )


def similarity_matrix(activations: torch.Tensor) -> torch.Tensor:
    """SP eqs. 2-3: ``Q Q^T`` of the flattened ``[b, ...]`` activations, rows L2-normalised."""
    flat = activations.flatten(1)
    return F.normalize(flat @ flat.t(), p=2, dim=1)


def similarity_preserving_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """SP eq. 4: ``1/b^2 ||G_T - G_S||_F^2`` for one pair of layers."""
    batch = student.shape[0]
    difference = similarity_matrix(teacher.detach()) - similarity_matrix(student)
    return difference.pow(2).sum() / batch**2


class _RelationalTerm(LossTerm):
    """Shared plumbing: read features by path, or the logits when both paths are ``None``."""

    def __init__(self, student: str | None = None, teacher: str | None = None, weight: float = 1.0):
        super().__init__(weight)
        if (student is None) != (teacher is None):
            raise KDistillError(
                f"{self.name}: give both 'student' and 'teacher' module paths, or neither to "
                "compare the logits"
            )
        self.student_path = None if student is None else check_path(self.name, "student", student)
        self.teacher_path = None if teacher is None else check_path(self.name, "teacher", teacher)
        self.needs_live_teacher = self.student_path is not None

    def reads(self) -> list[FeatureRequest]:
        if self.student_path is None or self.teacher_path is None:
            return []
        return [
            FeatureRequest("student", self.student_path),
            FeatureRequest("teacher", self.teacher_path),
        ]

    def _embeddings(self, context: TermContext) -> tuple[torch.Tensor, torch.Tensor]:
        if self.student_path is None or self.teacher_path is None:
            teacher_logits = context.teacher_logits
            if teacher_logits is None:
                raise KDistillError(f"the {self.name} loss needs a teacher: add distill.teachers")
            return context.student_logits, teacher_logits.detach()
        student = captured_feature(context, self.name, "student", self.student_path)
        teacher = captured_feature(context, self.name, "teacher", self.teacher_path)
        if student.shape[0] != teacher.shape[0]:
            raise KDistillError(
                f"{self.name}: student {self.student_path!r} and teacher {self.teacher_path!r} "
                f"features have batch sizes {student.shape[0]} and {teacher.shape[0]}"
            )
        return student, teacher


@register_term
class RelationalDistanceLoss(_RelationalTerm):
    """RKD distance-wise loss (Park et al., CVPR 2019, section 3.2.1).

    ``student``/``teacher`` are module paths of the embeddings to relate (e.g. the
    penultimate layers); with both ``None`` it relates the logits. Features are flattened
    per example and may differ in size between the models.
    """

    name = "rkd_distance"

    def __init__(self, student: str | None = None, teacher: str | None = None, weight: float = 1.0):
        super().__init__(student, teacher, weight)

    def forward(self, context: TermContext) -> torch.Tensor:
        return rkd_distance_loss(*self._embeddings(context))


@register_term
class RelationalAngleLoss(_RelationalTerm):
    """RKD angle-wise loss (Park et al., CVPR 2019, section 3.2.2).

    Same inputs as :class:`RelationalDistanceLoss`. Cost grows as ``B^3`` in the batch size.
    """

    name = "rkd_angle"

    def __init__(self, student: str | None = None, teacher: str | None = None, weight: float = 1.0):
        super().__init__(student, teacher, weight)

    def forward(self, context: TermContext) -> torch.Tensor:
        return rkd_angle_loss(*self._embeddings(context))


@register_term
class SimilarityPreservingLoss(FeaturePair):
    """Similarity-preserving KD (Tung & Mori, ICCV 2019, eqs. 2-4) for one pair of layers.

    ``student`` and ``teacher`` are module paths; their outputs are flattened per example
    (sizes may differ). The paper's objective adds ``gamma * sum_pairs L_SP`` to the
    cross-entropy; use one term per layer pair, each with weight ``gamma``.
    """

    name = "sp"

    def forward(self, context: TermContext) -> torch.Tensor:
        student, teacher = self.captured_pair(context)
        if student.shape[0] != teacher.shape[0]:
            raise KDistillError(
                f"sp: student {self.student_path!r} and teacher {self.teacher_path!r} features "
                f"have batch sizes {student.shape[0]} and {teacher.shape[0]}"
            )
        return similarity_preserving_loss(student, teacher)
