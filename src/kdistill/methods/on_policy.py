"""On-policy batches for causal-LM distillation: GKD (Agarwal et al., "On-Policy Distillation
of Language Models: Learning from Self-Generated Mistakes", ICLR 2024, Algorithm 1).

A share ``lambda`` (``distill.on_policy.fraction``) of the training batches is replaced by
the student's own continuations: each text's first ``prompt_tokens`` tokens are the prompt
``x``, the student samples ``y ~ q_theta(. | x)`` at ``temperature`` (no gradient through
the sampling, as in the paper), and the distillation terms (forward KL, reverse KL or
JSD(beta), :mod:`kdistill.losses.causal_lm`) are computed on ``(x, y)`` over the generated
tokens of ``y`` only (prompt and padding left out), with the teacher run on the generated
sequences. Otherwise the batch is the data, as without on-policy training.

* Which batches are on-policy (spread evenly, so that any stretch of steps has the share
  lambda: :func:`is_on_policy`), and what is sampled, depends on the run's seed and the
  training step only (a hash, never the wall clock or the global random state): the step
  count is a buffer of the objective, saved in every checkpoint, so ``--resume`` continues
  the same sequence of choices and samples.
* A cached teacher (``lm_divergence`` with ``cached_top_k``) holds top-k log-probabilities of
  the data's texts only, not of sequences the student generates during training. Such terms
  read the cache on off-policy batches; on on-policy batches the teacher runs live on the
  generated sequences and its top-k (the same ``k`` and temperature) is computed there.
* Terms that do not read the teacher (``lm_cross_entropy``) would train the student on its
  own samples: on on-policy batches they are left out (logged as 0).
* The end-of-text token is also the padding id (0): a sampled end-of-text ends the
  continuation and, like padding, is not a target.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch
from torch import nn

from kdistill.config import DistillRunConfig, OnPolicyConfig
from kdistill.data import Batch
from kdistill.engine.objective import ObjectiveOutput
from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, LossTerm
from kdistill.losses.causal_lm import (
    TOP_K_IDS,
    TOP_K_LOG_PROBS,
    TokenDivergence,
    teacher_top_k,
)
from kdistill.methods.distill import Distiller
from kdistill.models.causal_lm import PAD_TOKEN_ID, sample_continuations
from kdistill.teachers import Teacher

__all__ = [
    "OnPolicyDistiller",
    "check_on_policy",
    "check_positions",
    "is_on_policy",
    "on_policy_choices",
    "on_policy_distiller",
]


def _uniform(tag: str, seed: int, step: int) -> int:
    """63 random bits from ``(tag, seed, step)`` by hashing (nearby pairs do not collide)."""
    digest = hashlib.sha256(f"kdistill-on-policy:{tag}:{seed}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def is_on_policy(seed: int, step: int, fraction: float) -> bool:
    """Whether training step ``step`` (0-based, counted over the whole run) is on-policy.

    GKD draws Bernoulli(lambda) per batch; here the steps are spread evenly with a phase
    ``u`` in [0, 1) drawn from the seed: step ``s`` is on-policy when ``floor((s + 1) lambda +
    u) > floor(s lambda + u)``. The expected share is lambda either way, but any run of ``n``
    steps then has ``lambda n`` of them, rounded up or down, also a short run (where
    independent draws can stray far from lambda). Never for 0, always for 1."""
    phase = _uniform("phase", seed, 0) / (1 << 63)
    return math.floor((step + 1) * fraction + phase) > math.floor(step * fraction + phase)


def on_policy_choices(seed: int, fraction: float, steps: int) -> list[bool]:
    """The on-policy choice of each of the first ``steps`` training steps."""
    return [is_on_policy(seed, step, fraction) for step in range(steps)]


def _reads_teacher(term: LossTerm) -> bool:
    return (
        term.reads_teacher_logits
        or term.needs_live_teacher
        or any(request.side == "teacher" for request in term.reads())
    )


def check_on_policy(config: DistillRunConfig, terms: Sequence[LossTerm]) -> None:
    """Refuse, in one line, what on-policy batches cannot do (before any cache is built)."""
    if config.task != "language-modeling":
        raise KDistillError(
            f"distill.on_policy needs task: language-modeling (a causal LM student generates "
            f"the batches), this config has task: {config.task}: remove distill.on_policy"
        )
    if config.distill.cache_teacher_features:
        raise KDistillError(
            "distill.on_policy: cached teacher features cannot cover sequences the student "
            "generates during training: set distill.cache_teacher_features=false"
        )
    if config.distill.cache_teacher_logits == "always":
        raise KDistillError(
            "distill.on_policy: cached teacher logits cannot cover sequences the student "
            "generates during training: set distill.cache_teacher_logits=auto or never"
        )
    if not any(_reads_teacher(term) for term in terms if term.weight != 0):
        raise KDistillError(
            "distill.on_policy: no term reads the teacher, so on-policy batches would train "
            "nothing: add {kind: lm_divergence} to distill.terms"
        )


def check_positions(settings: OnPolicyConfig, models: dict[str, nn.Module]) -> None:
    """Refuse, in one line, generated sequences longer than a model's position table:
    ``prompt_tokens + max_new_tokens`` must fit every model's ``max_position_embeddings``
    (learned position tables index out of range past it; rotary ones were never trained
    there)."""
    longest = settings.prompt_tokens + settings.max_new_tokens
    for name, model in models.items():
        for module in model.modules():
            positions = getattr(getattr(module, "config", None), "max_position_embeddings", None)
            if isinstance(positions, int) and longest > positions:
                raise KDistillError(
                    f"distill.on_policy: prompt_tokens + max_new_tokens = {longest} is more than "
                    f"the {positions} positions of the {name}: lower distill.on_policy."
                    f"max_new_tokens or prompt_tokens"
                    + (" (or raise model.kwargs.max_positions)" if name == "model" else "")
                )


class OnPolicyDistiller(Distiller):
    """A :class:`Distiller` a share ``settings.fraction`` of whose training batches are the
    student's continuations of the batch's prompts (see the module docstring)."""

    on_policy_steps: torch.Tensor
    on_policy_batches: torch.Tensor

    def __init__(
        self,
        student: nn.Module,
        teacher: Teacher,
        terms: Sequence[LossTerm],
        settings: OnPolicyConfig,
        seed: int,
        *,
        pad_token_id: int = PAD_TOKEN_ID,
        use_labels: bool = True,
        cached_teacher_features: dict[FeatureRequest, torch.Tensor] | None = None,
    ) -> None:
        # No cached logits: they would not cover the generated sequences.
        super().__init__(
            student,
            teacher,
            terms,
            use_labels=use_labels,
            cached_teacher_features=cached_teacher_features,
        )
        self.settings, self.seed, self.pad_token_id = settings, seed, pad_token_id
        # Training steps seen and how many were on-policy: buffers, so checkpoints hold them.
        self.register_buffer("on_policy_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("on_policy_batches", torch.zeros((), dtype=torch.int64))
        self._teacher_free = [
            name
            for name, term in zip(self._term_names, terms, strict=True)
            if not _reads_teacher(term)
        ]
        top_k = {
            (int(term.top_k), float(term.temperature))
            for term in terms
            if isinstance(term, TokenDivergence) and term.cached_top_k and term.top_k
        }
        if len(top_k) > 1:
            raise KDistillError(
                "lm_divergence cached_top_k: give every such term the same top_k and temperature"
            )
        self._top_k: tuple[int, float] | None = next(iter(top_k)) if top_k else None
        self._live: dict[FeatureRequest, torch.Tensor] | None = None

    def forward(self, batch: Batch) -> ObjectiveOutput:
        # The dry run before training (eval mode, no gradient) and evaluations are not steps.
        if not (self.training and torch.is_grad_enabled()):
            return super().forward(batch)
        step = int(self.on_policy_steps)
        self.on_policy_steps += 1
        if not is_on_policy(self.seed, step, self.settings.fraction):
            return super().forward(batch)
        self.on_policy_batches += 1
        generated = self.generate_batch(batch, step)
        try:
            if self._top_k is not None:
                self._live = self._live_top_k(generated.inputs)
            output = super().forward(generated)
        finally:
            self._live = None
        for name in self._teacher_free:
            if name in output.losses:
                output.losses[name] = torch.zeros_like(output.losses[name])
        return output

    def generate_batch(self, batch: Batch, step: int) -> Batch:
        """The batch with the student's continuations of its prompts as inputs and the
        generated tokens as the only targets. The prompts are each text's first
        ``prompt_tokens`` tokens, fewer when a text of the batch is shorter, so that all
        prompts have one length and need no padding."""
        ids = batch.inputs
        shortest = int((ids != self.pad_token_id).sum(dim=1).min())
        prompt_length = max(1, min(self.settings.prompt_tokens, shortest))
        # Each process of a torchrun run samples its own share of the batch.
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank = torch.distributed.get_rank() if distributed else 0
        sequences = sample_continuations(
            self.student,
            ids[:, :prompt_length],
            self.settings.max_new_tokens,
            self.settings.temperature,
            seed=_uniform(f"sample:{rank}", self.seed, step),
            pad_token_id=self.pad_token_id,
        )
        target_mask = sequences != self.pad_token_id
        target_mask[:, :prompt_length] = False
        return Batch(
            inputs=sequences,
            labels=batch.labels,
            indices=batch.indices,
            target_mask=target_mask,
        )

    @torch.no_grad()
    def _live_top_k(self, ids: torch.Tensor) -> dict[FeatureRequest, torch.Tensor]:
        """The teacher's top-k log-probabilities and ids on generated sequences, as the
        top-k cache stores them for the data (``teacher_top_k_for_split``)."""
        assert self.teacher is not None and self._top_k is not None
        k, temperature = self._top_k
        logits = self.teacher(ids)
        if logits.dim() == 4:  # the members' stacked logits: their mean, as the cache takes
            logits = logits.mean(dim=0)
        log_probs, top_ids = teacher_top_k(logits, k, temperature)
        return {TOP_K_LOG_PROBS: log_probs, TOP_K_IDS: top_ids}

    def _cached_feature(self, request: FeatureRequest, batch: Batch) -> torch.Tensor:
        if self._live is not None and request in self._live:
            return self._live[request]
        return super()._cached_feature(request, batch)


def on_policy_distiller(
    config: DistillRunConfig,
    student: nn.Module,
    teacher: Teacher,
    terms: Sequence[LossTerm],
    features: dict[FeatureRequest, torch.Tensor] | None,
) -> OnPolicyDistiller:
    """``kdistill distill``'s objective when the config has ``distill.on_policy`` (the
    teacher's logits are never cached: they would not cover the generated sequences)."""
    assert config.distill.on_policy is not None
    return OnPolicyDistiller(
        student,
        teacher,
        terms,
        config.distill.on_policy,
        config.seed,
        use_labels=config.distill.use_labels,
        cached_teacher_features=features,
    )
