"""Loss terms for dense predictions: structured distillation for semantic segmentation.

Reference: Y. Liu, K. Chen, C. Liu, Z. Qin, Z. Luo, J. Wang, "Structured Knowledge Distillation
for Semantic Segmentation", CVPR 2019, section 3.1. The full objective (eq. 4) is
``l = l_mc(S) + lambda_1 l_pi(S) + lambda_2 l_pa(S) - lambda_3 l_ho(S, D)`` with
``lambda_1 = 10`` and ``lambda_2 = 1`` in the paper: ``l_mc`` is the per-pixel cross-entropy
with the labels (``hard_targets``), the others are the terms below (the holistic, adversarial
``l_ho`` is not built here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm, TermContext, register_term
from kdistill.losses.feature_terms import FeaturePair
from kdistill.losses.logits import soft_target_kl, teacher_log_probs

__all__ = [
    "PairwiseAffinityDistillation",
    "PixelwiseDistillation",
    "affinity_matrix",
    "pairwise_affinity_loss",
    "pixelwise_kl",
]


def _check_dense(name: str, logits: torch.Tensor, side: str) -> None:
    if logits.dim() != 4:
        raise KDistillError(
            f"{name} reads dense logits [batch, classes, H, W], the {side} returned "
            f"{list(logits.shape)}: use it with task: segmentation"
        )


def pixelwise_kl(
    student_logits: torch.Tensor, teacher_member_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Liu et al. eq. 1, ``l_pi = 1/(W'H') sum_i KL(q_i^t || q_i^s)``: the teacher's class
    distribution at every pixel ``i`` is the student's soft target.

    ``student_logits`` ``[B, C, H, W]``, ``teacher_member_logits`` ``[M, B, C, H, W]`` (an
    ensemble's members are averaged as in :func:`~kdistill.losses.logits.teacher_log_probs`).
    At ``temperature`` T both are softened and the value scaled by ``T^2`` (Hinton et al.); the
    paper's term is T = 1. Averaged over pixels and the batch.
    """
    members, batch, classes = teacher_member_logits.shape[:3]
    student = student_logits.permute(0, 2, 3, 1).reshape(-1, classes)
    teacher = teacher_member_logits.permute(0, 1, 3, 4, 2).reshape(members, -1, classes)
    return soft_target_kl(student, teacher_log_probs(teacher, temperature), temperature)


def affinity_matrix(features: torch.Tensor, node_size: int) -> torch.Tensor:
    """Cosine similarities between the nodes of a feature map (Liu et al. eq. 2, ``a_ij``).

    The map ``[B, C, H, W]`` is average-pooled over ``node_size x node_size`` windows (one node
    each); ``a_ij = f_i^T f_j / (||f_i|| ||f_j||)`` for the nodes' ``C``-vectors. Returns
    ``[B, N, N]`` with ``N = (H / node_size) (W / node_size)``.
    """
    if node_size > 1:
        features = F.avg_pool2d(features, node_size, stride=node_size, ceil_mode=True)
    nodes = F.normalize(features.flatten(2), dim=1, eps=1e-8)  # [B, C, N], unit columns
    return nodes.transpose(1, 2) @ nodes


def pairwise_affinity_loss(
    student_features: torch.Tensor, teacher_features: torch.Tensor, node_size: int
) -> torch.Tensor:
    """Liu et al. eq. 2, ``l_pa = 1/(W'H')^2 sum_i sum_j (a_ij^s - a_ij^t)^2``, averaged over
    the batch. The channel counts may differ; the node grids must agree."""
    student = affinity_matrix(student_features, node_size)
    teacher = affinity_matrix(teacher_features, node_size)
    return (student - teacher).pow(2).mean(dim=(1, 2)).mean()


@register_term
class PixelwiseDistillation(LossTerm):
    """``pixel_kl``: per-pixel KL divergence from the teacher's class distributions
    (:func:`pixelwise_kl`); the paper's weight is ``lambda_1 = 10``."""

    name = "pixel_kl"
    # The teacher's logits of a whole training set are [N, classes, H, W]: far too large to
    # cache (4000 canvases x 21 x 64 x 64 floats = 1.4 GB), so the teacher runs on each batch.
    needs_live_teacher = True

    def __init__(self, weight: float = 10.0, temperature: float = 1.0) -> None:
        super().__init__(weight)
        if temperature <= 0:
            raise KDistillError(f"pixel_kl: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, context: TermContext) -> torch.Tensor:
        if context.teacher_member_logits is None:
            raise KDistillError("pixel_kl needs a teacher: add distill.teachers")
        _check_dense(self.name, context.student_logits, "student")
        if context.teacher_member_logits.shape[1:] != context.student_logits.shape:
            raise KDistillError(
                f"pixel_kl: the teacher's logits are {list(context.teacher_member_logits.shape[1:])}"
                f" and the student's {list(context.student_logits.shape)}: both must predict "
                "the same classes at the input's resolution"
            )
        return pixelwise_kl(context.student_logits, context.teacher_member_logits, self.temperature)


@register_term
class PairwiseAffinityDistillation(FeaturePair):
    """``pairwise``: the student's affinity matrix between feature nodes matches the teacher's
    (:func:`pairwise_affinity_loss`); ``student`` and ``teacher`` are module paths of
    ``[B, C, H, W]`` maps at the same resolution, ``node_size`` the side of a node in pixels
    of those maps (the paper's ``beta``). The paper's weight is ``lambda_2 = 1``."""

    name = "pairwise"

    def __init__(self, student: str, teacher: str, weight: float = 1.0, node_size: int = 2) -> None:
        super().__init__(student, teacher, weight)
        if int(node_size) < 1:
            raise KDistillError(f"pairwise: node_size must be >= 1, got {node_size}")
        self.node_size = int(node_size)

    def forward(self, context: TermContext) -> torch.Tensor:
        student, teacher = self.captured_pair(context)
        for side, path, tensor in (
            ("student", self.student_path, student),
            ("teacher", self.teacher_path, teacher),
        ):
            if tensor.dim() != 4:
                raise KDistillError(
                    f"pairwise: {side} module {path!r} outputs {list(tensor.shape)}, not a "
                    "feature map [B, C, H, W]: choose a convolutional layer"
                )
        if student.shape[-2:] != teacher.shape[-2:]:
            raise KDistillError(
                f"pairwise: student module {self.student_path!r} outputs a "
                f"{list(student.shape[-2:])} map and teacher module {self.teacher_path!r} a "
                f"{list(teacher.shape[-2:])} map: choose layers at the same output stride"
            )
        return pairwise_affinity_loss(student, teacher.detach(), self.node_size)
