"""Token-level divergences for causal language models: forward KL, reverse KL and the
generalised Jensen-Shannon divergence, dense or from a teacher's top-k logits.

At every position ``t`` the teacher gives ``p(. | x_<t)`` and the student ``q_theta``; each
divergence is summed over the vocabulary and averaged over the *real* positions (``mask``
true: padding and prompt positions left out).

* forward KL ``KL(p || q)`` -- the usual distillation objective (mean-seeking);
* reverse KL ``KL(q || p)`` -- MiniLLM (Gu et al., ICLR 2024), mode-seeking;
* generalised JSD (Agarwal et al., "On-Policy Distillation of Language Models: Learning from
  Self-Generated Mistakes" (GKD), ICLR 2024, eq. 1): with ``m = beta p + (1 - beta) q``,
  ``JSD(beta) = beta KL(p || m) + (1 - beta) KL(q || m)``. As ``beta -> 0``,
  ``JSD(beta) / beta -> KL(p || q)``; as ``beta -> 1``, ``JSD(beta) / (1 - beta) -> KL(q || p)``.

Sparse teacher (a top-k cache): the teacher keeps its ``k`` largest log-probabilities and the
remaining mass ``r = 1 - sum_top p``. The student's distribution is collapsed onto the same
``k + 1`` outcomes (the ``k`` tokens, and "any other token" with mass ``1 - sum_top q``); every
divergence above is then computed on these ``k + 1`` outcomes. It is exact when ``k`` is the
vocabulary size (the remainder is empty) and a lower bound otherwise (the data processing
inequality).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, LossTerm, TermContext, register_term

__all__ = [
    "NextTokenCrossEntropy",
    "TokenDivergence",
    "collapse_to_top_k",
    "forward_kl",
    "generalized_jsd",
    "masked_token_mean",
    "next_token_cross_entropy",
    "reverse_kl",
    "teacher_top_k",
    "token_divergence",
]

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")
TOP_K_LOG_PROBS = FeatureRequest("teacher", "<top-k log-probabilities>")
TOP_K_IDS = FeatureRequest("teacher", "<top-k token ids>")
"""How a teacher top-k cache reaches the terms: as cached teacher "features" ``[N, T, k]``,
served by example like any cached feature (no module has these paths)."""


def masked_token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` ``[B, T]`` over the positions where ``mask`` is true (0 if none)."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``sum_v p_v (log p_v - log q_v)`` over the last axis; outcomes with ``p_v = 0`` add 0."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(dim=-1)


def forward_kl(teacher_log: torch.Tensor, student_log: torch.Tensor) -> torch.Tensor:
    """``KL(p || q)`` per position ``[B, T]`` from log-probabilities ``[B, T, V]``."""
    return _kl(teacher_log, student_log)


def reverse_kl(teacher_log: torch.Tensor, student_log: torch.Tensor) -> torch.Tensor:
    """``KL(q || p)`` per position."""
    return _kl(student_log, teacher_log)


def generalized_jsd(
    teacher_log: torch.Tensor, student_log: torch.Tensor, beta: float
) -> torch.Tensor:
    """GKD's ``JSD(beta) = beta KL(p || m) + (1 - beta) KL(q || m)``, ``m = beta p + (1 - beta) q``
    (``0 < beta < 1``), per position."""
    if not 0 < beta < 1:
        raise KDistillError(
            f"jsd beta={beta}: use 0 < beta < 1 (the limits are forward_kl and reverse_kl)"
        )
    mixture = torch.logsumexp(
        torch.stack([teacher_log + math.log(beta), student_log + math.log(1 - beta)]), dim=0
    )
    return beta * _kl(teacher_log, mixture) + (1 - beta) * _kl(student_log, mixture)


def token_divergence(
    kind: str, teacher_log: torch.Tensor, student_log: torch.Tensor, beta: float = 0.5
) -> torch.Tensor:
    """One of :data:`DIVERGENCES` per position."""
    if kind == "forward_kl":
        return forward_kl(teacher_log, student_log)
    if kind == "reverse_kl":
        return reverse_kl(teacher_log, student_log)
    if kind == "jsd":
        return generalized_jsd(teacher_log, student_log, beta)
    raise KDistillError(f"unknown divergence {kind!r}: use one of {', '.join(DIVERGENCES)}")


def teacher_top_k(
    teacher_logits: torch.Tensor, k: int, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's ``k`` largest log-probabilities ``[..., k]`` (at ``temperature``) and
    their token ids: what a top-k cache stores (the remaining mass follows from them)."""
    log_probs = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    values, indices = log_probs.topk(min(k, log_probs.shape[-1]), dim=-1)
    return values, indices


_MIN_REMAINDER = 1e-12
"""Floor of the "other tokens" mass: a top-k that holds all the teacher's mass in float32
must not make a reverse KL infinite."""


def _log_remainder(top_log: torch.Tensor) -> torch.Tensor:
    """``log(1 - sum exp(top_log))`` over the last axis (floored at ``_MIN_REMAINDER``)."""
    mass = top_log.exp().sum(dim=-1, keepdim=True)
    return (1.0 - mass).clamp_min(_MIN_REMAINDER).log()


def collapse_to_top_k(
    teacher_top_log: torch.Tensor, top_ids: torch.Tensor, student_log: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher and student log-probabilities on the ``k + 1`` outcomes ``(top ids, rest)``:
    ``[..., k + 1]`` each (see the module docstring)."""
    student_top = student_log.gather(-1, top_ids)
    if top_ids.shape[-1] == student_log.shape[-1]:  # k = vocabulary: nothing remains
        return teacher_top_log, student_top
    teacher = torch.cat([teacher_top_log, _log_remainder(teacher_top_log)], dim=-1)
    student = torch.cat([student_top, _log_remainder(student_top)], dim=-1)
    return teacher, student


def next_token_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``-log q(x_t | x_<t)`` averaged over the real positions (the baseline objective)."""
    per_token = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none")
    return masked_token_mean(per_token, mask)


# --- Loss terms on a causal LM's logits [B, T, V] (position t predicts token t + 1) ---------


def _next_token_view(context: TermContext, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(targets [B, T-1], mask [B, T-1])``: each position predicts the next real token."""
    ids = context.inputs
    if ids.dtype != torch.int64 or ids.dim() != 2 or context.student_logits.dim() != 3:
        raise KDistillError(
            "causal-LM terms need token ids [batch, tokens] and logits [batch, tokens, vocab]: "
            "use task: language-modeling with a causal LM (model.name: llama)"
        )
    targets = ids[:, 1:]
    mask = targets != pad_token_id
    if context.target_mask is not None:  # on-policy batches: the generated tokens only
        mask = mask & context.target_mask[:, 1:]
    return targets, mask


@register_term
class NextTokenCrossEntropy(LossTerm):
    """``-log q(x_{t+1} | x_<=t)`` over the real next tokens: the student-alone objective."""

    name = "lm_cross_entropy"
    reads_teacher_logits = False

    def __init__(self, pad_token_id: int = 0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.pad_token_id = pad_token_id

    def forward(self, context: TermContext) -> torch.Tensor:
        targets, mask = _next_token_view(context, self.pad_token_id)
        return next_token_cross_entropy(context.student_logits[:, :-1], targets, mask)


@register_term
class TokenDivergence(LossTerm):
    """Forward KL, reverse KL or GKD's JSD(beta) between the teacher's and the student's
    next-token distributions at ``temperature``, over the real positions; with ``top_k`` the
    teacher keeps its ``k`` largest probabilities and the rest as one mass (the sparse form a
    top-k cache serves). The teacher runs on each batch: a dense logit cache of a 49k
    vocabulary would not fit in memory."""

    name = "lm_divergence"
    needs_live_teacher = True

    def __init__(
        self,
        divergence: str = "forward_kl",
        beta: float = 0.5,
        temperature: float = 1.0,
        top_k: int | None = None,
        cached_top_k: bool = False,
        pad_token_id: int = 0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        if cached_top_k and top_k is None:
            raise KDistillError("lm_divergence: cached_top_k needs top_k (e.g. top_k: 64)")
        # From the cache the teacher never runs during training.
        self.cached_top_k = cached_top_k
        self.needs_live_teacher = not cached_top_k
        self.reads_teacher_logits = not cached_top_k
        if divergence not in DIVERGENCES:
            raise KDistillError(
                f"lm_divergence: divergence={divergence!r}: use one of {', '.join(DIVERGENCES)}"
            )
        if divergence == "jsd" and not 0 < beta < 1:
            raise KDistillError(f"lm_divergence: beta={beta}: use 0 < beta < 1")
        self.divergence, self.beta, self.temperature = divergence, beta, temperature
        self.top_k, self.pad_token_id = top_k, pad_token_id

    def reads(self) -> list[FeatureRequest]:
        return [TOP_K_LOG_PROBS, TOP_K_IDS] if self.cached_top_k else []

    def forward(self, context: TermContext) -> torch.Tensor:
        _, mask = _next_token_view(context, self.pad_token_id)
        if self.cached_top_k:
            student_log = F.log_softmax(
                context.student_logits[:, :-1].float() / self.temperature, -1
            )
            top = context.features[TOP_K_LOG_PROBS][:, :-1].float()
            ids = context.features[TOP_K_IDS][:, :-1].long()
            teacher_log, student_log = collapse_to_top_k(top, ids, student_log)
            per_token = token_divergence(self.divergence, teacher_log, student_log, self.beta)
            return masked_token_mean(per_token, mask) * self.temperature**2
        teacher_logits = context.teacher_logits
        if teacher_logits is None:
            raise KDistillError("lm_divergence needs a teacher: add distill.teachers")
        student_log = F.log_softmax(context.student_logits[:, :-1].float() / self.temperature, -1)
        if self.top_k is not None:
            top, ids = teacher_top_k(teacher_logits[:, :-1], self.top_k, self.temperature)
            teacher_log, student_log = collapse_to_top_k(top, ids, student_log)
        else:
            teacher_log = F.log_softmax(teacher_logits[:, :-1].float() / self.temperature, -1)
        per_token = token_divergence(self.divergence, teacher_log, student_log, self.beta)
        return masked_token_mean(per_token, mask) * self.temperature**2
