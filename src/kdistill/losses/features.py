"""Losses that match intermediate features: FitNet hints and neuron selectivity transfer.

* FitNets -- A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, "FitNets:
  Hints for Thin Deep Nets", ICLR 2015, section 2.2, eq. 3:
  ``L_HT = 1/2 || u_h(x) - r(v_g(x)) ||^2``, where ``u_h`` is the teacher's hint layer,
  ``v_g`` the student's guided layer and ``r`` a learned regressor.
* NST -- Z. Huang, N. Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity
  Transfer", arXiv:1707.01219 (2017), section 3: the squared Maximum Mean Discrepancy between
  the teacher's and the student's sets of L2-normalised per-channel activation maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import TermContext, register_term
from kdistill.losses.feature_terms import (
    AdaptedFeaturePair,
    FeaturePair,
    check_same_layout,
    resize_to,
)

HINT_REDUCTIONS = ("sum", "mean")
NST_KERNELS = ("linear", "polynomial", "gaussian")


def hint_loss(
    regressed_student: torch.Tensor, teacher_hint: torch.Tensor, reduction: str = "sum"
) -> torch.Tensor:
    """FitNets eq. 3, ``1/2 ||u_h(x) - r(v_g(x))||^2`` per example, averaged over the batch.

    ``reduction="sum"`` is the paper's squared norm over all feature elements;
    ``reduction="mean"`` divides it by the number of elements per example (half the mean
    squared error), which keeps the scale independent of the layer size.
    """
    if regressed_student.shape != teacher_hint.shape:
        raise KDistillError(
            f"fitnet: regressed student feature {tuple(regressed_student.shape)} and teacher hint "
            f"{tuple(teacher_hint.shape)} differ in shape"
        )
    per_example = 0.5 * (teacher_hint - regressed_student).pow(2).flatten(1).sum(dim=1)
    if reduction == "mean":
        per_example = per_example / teacher_hint[0].numel()
    return per_example.mean()


@register_term
class HintLoss(AdaptedFeaturePair):
    """FitNet hint: a regressor maps the student's guided layer onto the teacher's hint layer.

    ``student`` and ``teacher`` are module paths; their outputs are ``[B, D]`` (the regressor
    ``r`` is ``nn.Linear``), ``[B, N, D]`` (``nn.Linear`` on the last axis) or ``[B, C, H, W]``
    (a 1x1 ``nn.Conv2d``, its output resized bilinearly to the hint's ``H x W`` when they
    differ). The paper's regressor is a convolution whose kernel size makes the spatial sizes
    agree; a 1x1 convolution with interpolation is cheaper and handles any sizes. The
    regressor is linear, so a pre-activation hint layer is the closest match to the paper's
    requirement that ``u_h`` and ``r`` share their non-linearity. It belongs to this term
    (trained with the student, never exported) and is created on the first forward pass or
    :meth:`prepare`.

    The paper trains in two stages: first the student up to the guided layer, with the
    regressor, on this term alone, then the whole student with KD. This term works alone (it
    reads no logits), so the trainer runs stage 1 with only this term and stage 2 without it.
    """

    name = "fitnet"

    def __init__(
        self, student: str, teacher: str, weight: float = 1.0, reduction: str = "sum"
    ) -> None:
        super().__init__(student, teacher, weight)
        if reduction not in HINT_REDUCTIONS:
            raise KDistillError(
                f"fitnet: reduction must be one of {', '.join(HINT_REDUCTIONS)}, got {reduction!r}"
            )
        self.reduction = reduction

    @property
    def regressor(self) -> nn.Module | None:
        """The paper's name for the adapter."""
        return self.adapter

    def forward(self, context: TermContext) -> torch.Tensor:
        regressed, teacher = self.adapted_features(context)
        return hint_loss(regressed, teacher, self.reduction)


def selectivity_maps(feature: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C, H*W]``: each channel's map, L2-normalised over positions.

    NST section 3: every channel ``f_k`` is one sample of the layer's distribution of neuron
    selectivity patterns, normalised as ``f_k / ||f_k||_2`` so the magnitudes do not matter.
    An all-zero map stays zero.
    """
    return F.normalize(feature.flatten(2), p=2, dim=-1)


def kernel_matrix(
    left: torch.Tensor, right: torch.Tensor, kernel: str, sigma_squared: torch.Tensor | None
) -> torch.Tensor:
    """Batched kernel values ``k(left_i, right_j)`` for ``[B, n, N]`` and ``[B, m, N]``.

    NST section 3 kernels: linear ``x.y``, polynomial ``(x.y + c)^d`` with ``d = 2``,
    ``c = 0``, and Gaussian ``exp(-||x - y||^2 / (2 sigma^2))`` (``sigma_squared`` of shape
    ``[B]``).
    """
    inner = left @ right.transpose(1, 2)
    if kernel == "linear":
        return inner
    if kernel == "polynomial":
        return inner.pow(2)
    assert sigma_squared is not None
    squared_distance = squared_distances(left, right)
    return torch.exp(-squared_distance / (2 * sigma_squared[:, None, None]))


def squared_distances(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``||left_i - right_j||^2`` for ``[B, n, N]`` and ``[B, m, N]`` (clamped at 0)."""
    left_norms = left.pow(2).sum(dim=-1)
    right_norms = right.pow(2).sum(dim=-1)
    inner = left @ right.transpose(1, 2)
    return (left_norms[:, :, None] + right_norms[:, None, :] - 2 * inner).clamp_min(0)


def default_gaussian_bandwidth(
    student_maps: torch.Tensor, teacher_maps: torch.Tensor
) -> torch.Tensor:
    """``sigma^2`` per example: the mean squared distance over all pairs of distinct maps.

    NST sets the Gaussian kernel's ``sigma^2`` to the mean squared distance of the pairs; the
    pairs here are all distinct pairs in the union of the student's and teacher's maps of one
    example. The bandwidth is part of the loss, so the gradient flows through it too.
    """
    maps = torch.cat([student_maps, teacher_maps], dim=1)
    count = maps.shape[1]
    distances = squared_distances(maps, maps)
    mean = distances.sum(dim=(1, 2)) / (count * (count - 1))
    return mean.clamp_min(torch.finfo(maps.dtype).eps)


def neuron_selectivity_mmd(
    student_feature: torch.Tensor,
    teacher_feature: torch.Tensor,
    kernel: str = "polynomial",
    sigma_squared: float | None = None,
) -> torch.Tensor:
    """NST's squared MMD between channel-map sets, averaged over the batch.

    For teacher maps ``t_i`` (``C_T`` of them) and student maps ``s_j`` (``C_S``), all
    L2-normalised (:func:`selectivity_maps`):

        MMD^2 = 1/C_T^2 sum_{i,i'} k(t_i, t_i') + 1/C_S^2 sum_{j,j'} k(s_j, s_j')
                - 2/(C_T C_S) sum_{i,j} k(s_j, t_i).

    Channel counts may differ; spatial sizes must agree (resize the student first).
    """
    if kernel not in NST_KERNELS:
        raise KDistillError(f"nst: kernel must be one of {', '.join(NST_KERNELS)}, got {kernel!r}")
    student_maps = selectivity_maps(student_feature)
    teacher_maps = selectivity_maps(teacher_feature)
    if student_maps.shape[-1] != teacher_maps.shape[-1]:
        raise KDistillError(
            f"nst: student and teacher maps have {student_maps.shape[-1]} and "
            f"{teacher_maps.shape[-1]} positions; resize them to one spatial size"
        )
    bandwidth: torch.Tensor | None = None
    if kernel == "gaussian":
        if sigma_squared is None:
            bandwidth = default_gaussian_bandwidth(student_maps, teacher_maps)
        else:
            bandwidth = torch.full(
                (student_maps.shape[0],),
                float(sigma_squared),
                dtype=student_maps.dtype,
                device=student_maps.device,
            )
    teacher_term = kernel_matrix(teacher_maps, teacher_maps, kernel, bandwidth).mean(dim=(1, 2))
    student_term = kernel_matrix(student_maps, student_maps, kernel, bandwidth).mean(dim=(1, 2))
    cross_term = kernel_matrix(student_maps, teacher_maps, kernel, bandwidth).mean(dim=(1, 2))
    return (teacher_term + student_term - 2 * cross_term).mean()


@register_term
class NeuronSelectivityLoss(FeaturePair):
    """NST: squared MMD between the student's and teacher's distributions of channel maps.

    ``student`` and ``teacher`` are paths of modules with ``[B, C, H, W]`` outputs. Channel
    counts may differ (NST compares distributions of channels, so no adapter is needed); the
    student's maps are resized bilinearly to the teacher's ``H x W`` when the sizes differ.
    ``kernel`` is ``"polynomial"`` (the paper's ``d = 2, c = 0``, its best), ``"linear"`` or
    ``"gaussian"`` (``sigma_squared`` fixed, or ``None`` for the mean squared pair distance).
    The paper's objective is ``H(y, p_S) + lambda/2 * MMD^2``: this term is the ``MMD^2``,
    so its weight is ``lambda/2``.
    """

    name = "nst"

    def __init__(
        self,
        student: str,
        teacher: str,
        weight: float = 1.0,
        kernel: str = "polynomial",
        sigma_squared: float | None = None,
    ) -> None:
        super().__init__(student, teacher, weight)
        if kernel not in NST_KERNELS:
            raise KDistillError(
                f"nst: kernel must be one of {', '.join(NST_KERNELS)}, got {kernel!r}"
            )
        if sigma_squared is not None and sigma_squared <= 0:
            raise KDistillError(f"nst: sigma_squared must be > 0 (or null), got {sigma_squared}")
        self.kernel = kernel
        self.sigma_squared = sigma_squared

    def forward(self, context: TermContext) -> torch.Tensor:
        student, teacher = self.captured_pair(context)
        for side, path, feature in (
            ("student", self.student_path, student),
            ("teacher", self.teacher_path, teacher),
        ):
            if feature.dim() != 4:
                raise KDistillError(
                    f"nst: the {side} feature at {path!r} has shape {tuple(feature.shape)}; NST "
                    "needs convolutional maps [batch, channels, height, width]"
                )
        check_same_layout(self.name, student, teacher, (self.student_path, self.teacher_path))
        student = resize_to(student, teacher)
        return neuron_selectivity_mmd(student, teacher, self.kernel, self.sigma_squared)
