"""Losses that match the output logits: Hinton et al.'s soft targets and Caruana's logit matching.

Reference: G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network",
arXiv:1503.02531 (2015), section 2. ``q_i = exp(z_i/T) / sum_j exp(z_j/T)`` (eq. 1) is the
student's softened distribution, ``p`` the teacher's at the same temperature ``T``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm, TermContext

ENSEMBLE_RULES = ("arithmetic", "geometric")


def teacher_log_probs(
    member_logits: torch.Tensor, temperature: float, rule: str = "arithmetic"
) -> torch.Tensor:
    """Log of the teacher's soft targets at ``temperature`` for one model or an ensemble.

    ``member_logits`` has shape ``[members, batch, classes]`` (``members`` = 1 for one teacher).
    Section 2 of the paper: an ensemble's soft targets are the arithmetic or the geometric mean
    of the members' distributions. The geometric mean is renormalised, so it equals
    ``softmax(mean_m log_softmax(z_m / T))`` (and, since the log-normaliser is constant per
    example, ``softmax(mean_m z_m / T)``).
    """
    if member_logits.dim() != 3:
        raise KDistillError(
            f"teacher logits must have shape [members, batch, classes], got {tuple(member_logits.shape)}"
        )
    log_probs = F.log_softmax(member_logits / temperature, dim=-1)
    if rule == "arithmetic":
        return torch.logsumexp(log_probs, dim=0) - torch.log(
            torch.tensor(float(member_logits.shape[0]), dtype=log_probs.dtype)
        )
    if rule == "geometric":
        return F.log_softmax(log_probs.mean(dim=0), dim=-1)
    raise KDistillError(f"unknown ensemble rule {rule!r}: use one of {', '.join(ENSEMBLE_RULES)}")


def soft_target_cross_entropy(
    student_logits: torch.Tensor,
    teacher_log_probabilities: torch.Tensor,
    temperature: float,
    scale_by_temperature_squared: bool = True,
) -> torch.Tensor:
    """Cross-entropy between the teacher's and the student's distributions at ``temperature``.

    ``C = -sum_i p_i log q_i`` averaged over the batch, with ``q = softmax(z / T)`` the student's
    and ``p`` the teacher's soft targets (given as log-probabilities). Its gradient is
    ``dC/dz_i = (q_i - p_i) / T`` (paper, eq. 2). Because that gradient shrinks as ``1/T^2`` in
    the high-temperature limit, the paper multiplies the soft term by ``T^2`` so its relative
    weight does not change with ``T``; ``scale_by_temperature_squared`` does that.
    """
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    loss = -(teacher_log_probabilities.exp() * student_log_probs).sum(dim=-1).mean()
    if scale_by_temperature_squared:
        loss = loss * temperature**2
    return loss


def logit_squared_error(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Caruana et al.'s logit matching: ``1/2 sum_i (z_i - v_i)^2``, averaged over the batch.

    The paper (section 2.1) shows soft-target distillation approaches this, divided by
    ``N T^2``, when ``T`` is large compared with the logits and both are zero-meaned per case.
    """
    return 0.5 * (student_logits - teacher_logits).pow(2).sum(dim=-1).mean()


class SoftTargetLoss(LossTerm):
    """The paper's soft term: ``T^2 * CE(p_teacher(T), q_student(T))``."""

    name = "soft_targets"

    def __init__(
        self, weight: float = 1.0, temperature: float = 20.0, ensemble_rule: str = "arithmetic"
    ):
        super().__init__(weight)
        if temperature <= 0:
            raise KDistillError(f"distill.temperature must be > 0, got {temperature}")
        if ensemble_rule not in ENSEMBLE_RULES:
            raise KDistillError(
                f"distill.ensemble_rule must be one of {', '.join(ENSEMBLE_RULES)}, got {ensemble_rule!r}"
            )
        self.temperature = float(temperature)
        self.ensemble_rule = ensemble_rule

    def forward(self, context: TermContext) -> torch.Tensor:
        if context.teacher_member_logits is None:
            raise KDistillError("the soft-target loss needs a teacher: add distill.teachers")
        targets = teacher_log_probs(
            context.teacher_member_logits, self.temperature, self.ensemble_rule
        )
        return soft_target_cross_entropy(context.student_logits, targets, self.temperature)


class HardTargetLoss(LossTerm):
    """Cross-entropy with the true labels at ``T = 1`` (the paper's second objective)."""

    name = "hard_targets"

    def forward(self, context: TermContext) -> torch.Tensor:
        return F.cross_entropy(context.student_logits, context.labels)


class LogitMatchingLoss(LossTerm):
    """Squared error between student logits and the (mean) teacher logits (Caruana et al.)."""

    name = "logit_l2"

    def forward(self, context: TermContext) -> torch.Tensor:
        if context.teacher_member_logits is None:
            raise KDistillError("logit matching needs a teacher: add distill.teachers")
        return logit_squared_error(
            context.student_logits, context.teacher_member_logits.mean(dim=0)
        )
