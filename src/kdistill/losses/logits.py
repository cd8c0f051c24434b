"""Losses that match the output logits: Hinton et al.'s soft targets and Caruana's logit matching.

Reference: G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network",
arXiv:1503.02531 (2015), section 2. ``q_i = exp(z_i/T) / sum_j exp(z_j/T)`` (eq. 1) is the
student's softened distribution, ``p`` the teacher's at the same temperature ``T``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm, TermContext, register_term

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
    if rule not in ENSEMBLE_RULES:
        raise KDistillError(
            f"unknown ensemble rule {rule!r}: use one of {', '.join(ENSEMBLE_RULES)}"
        )
    log_probs = F.log_softmax(member_logits / temperature, dim=-1)
    if member_logits.shape[0] == 1:  # one teacher: both means are its own distribution
        return log_probs[0]
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


def soft_target_kl(
    student_logits: torch.Tensor, teacher_log_probabilities: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2 * KL(p || q)``: the paper's ``T^2``-scaled soft-target cross-entropy less the
    teacher's entropy ``T^2 H(p)``.

    The entropy does not depend on the student, so the gradient is the cross-entropy's,
    bit for bit (the constant is detached and subtracted after it); only the value differs:
    it falls to 0 when the student matches the teacher, where the cross-entropy stays at
    ``T^2 H(p)`` (~900 at T = 20 on MNIST). This is what every soft-target term logs.
    """
    cross_entropy = soft_target_cross_entropy(
        student_logits, teacher_log_probabilities, temperature
    )
    teacher = teacher_log_probabilities.detach()
    entropy = -(teacher.exp() * teacher).sum(dim=-1).mean() * temperature**2
    return cross_entropy - entropy


@register_term
class SoftTargetLoss(LossTerm):
    """The paper's soft term, ``T^2 * CE(p_teacher(T), q_student(T))``, whose value is
    reported as ``T^2 * KL(p || q)`` (:func:`soft_target_kl`: the same gradient).

    At high T its gradient approaches ``(z - v) / N`` (section 2), which is large while the
    student's logits are far from the teacher's: train with a learning-rate warm-up, or the
    first SGD steps can kill ReLUs (measured in the README).
    """

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
        if context.student_logits.dim() != 2:
            raise KDistillError(
                f"soft_targets reads logits [batch, classes], the student returned "
                f"{list(context.student_logits.shape)}: for dense outputs set "
                "distill.soft_target_weight: 0 and add {kind: pixel_kl}"
            )
        targets = teacher_log_probs(
            context.teacher_member_logits, self.temperature, self.ensemble_rule
        )
        return soft_target_kl(context.student_logits, targets, self.temperature)


@register_term
class HardTargetLoss(LossTerm):
    """Cross-entropy with the true labels at ``T = 1`` (the paper's second objective)."""

    name = "hard_targets"

    def forward(self, context: TermContext) -> torch.Tensor:
        # Unlabelled transfer text carries label -100 (cross-entropy's ignore_index): average
        # over the labelled examples only, and a batch without any gives 0, not NaN.
        labelled = context.labels != -100
        if bool(labelled.all()):
            return F.cross_entropy(context.student_logits, context.labels)
        total = F.cross_entropy(context.student_logits, context.labels, reduction="sum")
        return total / labelled.sum().clamp_min(1)


@register_term
class LogitMatchingLoss(LossTerm):
    """Squared error between student logits and the (mean) teacher logits (Caruana et al.)."""

    name = "logit_l2"

    def forward(self, context: TermContext) -> torch.Tensor:
        if context.teacher_member_logits is None:
            raise KDistillError("logit matching needs a teacher: add distill.teachers")
        return logit_squared_error(
            context.student_logits, context.teacher_member_logits.mean(dim=0)
        )


# --- Decoupled knowledge distillation -------------------------------------------------------
#
# Reference: B. Zhao, Q. Cui, R. Song, Y. Qiu, J. Liang, "Decoupled Knowledge Distillation",
# CVPR 2022, section 3. With ``p = softmax(z / T)`` and target class ``t``, the binary
# distribution ``b = [p_t, p_\t]`` (``p_\t = 1 - p_t``) holds the target / non-target mass and
# ``p_hat_i = p_i / p_\t`` (``i != t``) the distribution among the non-target classes.
# Section 3.1 rewrites classic KD exactly as
#     KD = KL(b^T || b^S) + (1 - p_t^T) KL(p_hat^T || p_hat^S) = TCKD + (1 - p_t^T) NCKD,
# and section 3.2 decouples the two: DKD = alpha * TCKD + beta * NCKD.


def decoupled_kd_parts(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example TCKD and NCKD of Zhao et al. (CVPR 2022, section 3.1), unscaled by ``T^2``.

    Returns two tensors of shape ``[batch]``: ``TCKD = KL(b^T || b^S)``, the binary KL
    divergence between teacher and student target/non-target masses, and
    ``NCKD = KL(p_hat^T || p_hat^S)``, the KL divergence among the non-target classes (the
    target class removed and the rest renormalised). Computed from log-probabilities, so no
    probability is divided by a vanishing mass. The teacher side is detached.
    """
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise KDistillError(
            "decoupled KD needs student and teacher logits of one shape [batch, classes], got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    batch, classes = student_logits.shape
    if classes < 2:
        raise KDistillError(f"decoupled KD needs at least 2 classes, got {classes}")
    if labels.dim() != 1 or labels.shape[0] != batch or labels.is_floating_point():
        raise KDistillError(
            "decoupled KD needs integer class labels of shape [batch]; soft or one-hot labels "
            f"are not supported (got {tuple(labels.shape)} {labels.dtype})"
        )
    target_mask = F.one_hot(labels, classes).bool()

    def masses(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scaled = logits / temperature
        log_normaliser = torch.logsumexp(scaled, dim=-1)
        log_target = scaled.gather(1, labels[:, None]).squeeze(1) - log_normaliser
        non_target = scaled[~target_mask].view(batch, classes - 1)
        log_rest = torch.logsumexp(non_target, dim=-1) - log_normaliser
        return log_target, log_rest, F.log_softmax(non_target, dim=-1)

    s_target, s_rest, s_non_target = masses(student_logits)
    t_target, t_rest, t_non_target = masses(teacher_logits.detach())
    tckd = t_target.exp() * (t_target - s_target) + t_rest.exp() * (t_rest - s_rest)
    nckd = (t_non_target.exp() * (t_non_target - s_non_target)).sum(dim=-1)
    return tckd, nckd


def decoupled_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """DKD loss ``T^2 * (alpha * TCKD + beta * NCKD)`` averaged over the batch.

    Zhao et al., CVPR 2022, section 3.2 ("DKD = alpha TCKD + beta NCKD"); the ``T^2`` factor
    keeps gradient magnitudes comparable across temperatures, as for Hinton's soft targets.
    With ``alpha = 1`` and ``beta = 1 - p_t^T`` (per example) it equals classic KD in its KL
    form, ``T^2 KL(p^T || p^S)`` (section 3.1); the cross-entropy form differs from that by the
    teacher's entropy, a constant with the same gradient but a different value.
    """
    tckd, nckd = decoupled_kd_parts(student_logits, teacher_logits, labels, temperature)
    return (alpha * tckd + beta * nckd).mean() * temperature**2


@register_term
class DecoupledKDLoss(LossTerm):
    """Decoupled KD (Zhao et al., CVPR 2022): ``T^2 (alpha TCKD + beta NCKD)``.

    Defaults are the paper's CIFAR-100 settings (``T = 4``, ``alpha = 1``, ``beta = 8``). The
    paper also warms the term up linearly over the first epochs; that is a schedule on
    :attr:`weight`, left to the trainer. Reads the (mean) teacher logits and the labels.
    """

    name = "dkd"

    def __init__(
        self, weight: float = 1.0, temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0
    ) -> None:
        super().__init__(weight)
        if temperature <= 0:
            raise KDistillError(f"dkd: temperature must be > 0, got {temperature}")
        if alpha < 0 or beta < 0:
            raise KDistillError(f"dkd: alpha and beta must be >= 0, got {alpha} and {beta}")
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, context: TermContext) -> torch.Tensor:
        teacher_logits = context.teacher_logits
        if teacher_logits is None:
            raise KDistillError("the dkd loss needs a teacher: add distill.teachers")
        if not context.has_labels:
            raise KDistillError(
                "the dkd loss needs class labels to split target and non-target classes; this "
                "data has none: use soft_targets instead"
            )
        return decoupled_kd(
            context.student_logits,
            teacher_logits,
            context.labels,
            self.temperature,
            self.alpha,
            self.beta,
        )
