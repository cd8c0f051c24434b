"""Loss terms of transformer distillation on token ids: hidden states, self-attention
relations, sentence embeddings.

Every token-level term averages over the *real* tokens only: the mask is ``inputs != pad``
(``pad_token_id``, 0 for BERT/MiniLM), so padding never enters a loss.

* ``hidden_mse`` -- TinyBERT (Jiao et al., "TinyBERT", Findings of EMNLP 2020), eq. 8:
  ``L_hidn = MSE(H^S W_h, H^T)`` for mapped layer pairs, through a learned projection
  ``W_h``; the uniform mapping ``g(m) = m N / M`` of section 3.1 or the last layers only.
* ``hidden_cosine`` -- DistilBERT (Sanh et al. 2019), section 2: the cosine embedding loss
  aligning the directions of student and teacher hidden states (last layer by default; a
  learned projection when the widths differ).
* ``minilm_attention`` -- MiniLM (Wang et al., NeurIPS 2020), eqs. 6-8: KL between the
  teacher's and the student's last-layer self-attention distributions and value relations
  ``softmax(V V^T / sqrt(d_k))``. Queries, keys and values are split into ``relation_heads``
  heads for both models, as MiniLMv2 (Wang et al., Findings of ACL 2021, eq. 3) does, so the
  student needs neither the teacher's width nor its head count; with ``relation_heads`` equal
  to both models' head counts this is MiniLM v1's loss. No projection is learned.
* ``embedding_cosine`` / ``embedding_mse`` -- a student that reproduces the teacher's
  sentence embeddings (its "logits" are the embedding; Reimers & Gurevych, EMNLP 2020, use
  the MSE).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, LossTerm, TermContext, register_term
from kdistill.losses.feature_terms import build_channel_adapter, captured_feature, check_path_pairs

__all__ = [
    "EmbeddingCosineLoss",
    "EmbeddingMSELoss",
    "HiddenCosineLoss",
    "HiddenMSELoss",
    "MiniLMAttentionLoss",
    "relation_kl",
    "self_attention_relation",
    "uniform_layer_pairs",
]

LAYER_PATH = "encoder.encoder.layer.{}"
"""Where a :class:`kdistill.models.text.TextEncoder` keeps its transformer layers."""


def token_mask(context: TermContext, pad_token_id: int) -> torch.Tensor:
    """``[B, L]`` true at real tokens: the batch's token ids differ from the pad id."""
    if context.inputs.dtype != torch.int64 or context.inputs.dim() != 2:
        raise KDistillError(
            f"token-level loss terms need token ids [batch, tokens], the batch holds "
            f"{context.inputs.dtype} {list(context.inputs.shape)}: use a text data set"
        )
    return context.inputs != pad_token_id


def uniform_layer_pairs(
    student_layers: int, teacher_layers: int, layer_path: str = LAYER_PATH
) -> list[tuple[str, str]]:
    """TinyBERT's uniform mapping: student layer ``m`` (1-based) learns from teacher layer
    ``g(m) = floor(m N / M)``, so the last layers are paired and the rest spread evenly."""
    if not 0 < student_layers <= teacher_layers:
        raise KDistillError(
            f"layer mapping: student_layers={student_layers} and teacher_layers={teacher_layers}"
            ": the student needs 1..teacher_layers layers"
        )
    return [
        (layer_path.format(m - 1), layer_path.format(m * teacher_layers // student_layers - 1))
        for m in range(1, student_layers + 1)
    ]


class _HiddenStatePairs(LossTerm):
    """Hidden states of mapped layer pairs, the student's projected onto the teacher's width."""

    needs_live_teacher = False  # the teacher features it reads may come from a cache

    def __init__(
        self,
        pairs: list[list[str]] | None = None,
        student_layers: int | None = None,
        teacher_layers: int | None = None,
        mapping: Literal["uniform", "last"] = "uniform",
        layer_path: str = LAYER_PATH,
        pad_token_id: int = 0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        if pairs is not None:
            self.pairs = check_path_pairs(self.name, pairs)
        elif student_layers is None or teacher_layers is None:
            raise KDistillError(
                f"{self.name}: give pairs: [[student_path, teacher_path], ...] or "
                "student_layers and teacher_layers (with mapping: uniform or last)"
            )
        elif mapping == "last":
            self.pairs = [
                (layer_path.format(student_layers - 1), layer_path.format(teacher_layers - 1))
            ]
        elif mapping == "uniform":
            self.pairs = uniform_layer_pairs(student_layers, teacher_layers, layer_path)
        else:
            raise KDistillError(f"{self.name}: mapping={mapping!r}: use uniform or last")
        self.pad_token_id = pad_token_id
        self.projections = nn.ModuleList()

    def reads(self) -> list[FeatureRequest]:
        return [
            FeatureRequest(side, path)
            for pair in self.pairs
            for side, path in zip(("student", "teacher"), pair, strict=True)
        ]

    def projected_pairs(self, context: TermContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(student hidden @ W, teacher hidden)`` per pair, both ``[B, L, D_teacher]``."""
        found = []
        for student_path, teacher_path in self.pairs:
            student = captured_feature(context, self.name, "student", student_path)
            teacher = captured_feature(context, self.name, "teacher", teacher_path)
            if student.shape[:2] != teacher.shape[:2]:
                raise KDistillError(
                    f"{self.name}: student {student_path} {list(student.shape)} and teacher "
                    f"{teacher_path} {list(teacher.shape)} differ in batch or tokens: both "
                    "models must read the same token ids"
                )
            found.append((student, teacher))
        if not self.projections:  # first batch (Distiller.prepare): before the optimizer
            for student, teacher in found:
                self.projections.append(build_channel_adapter(student, teacher.shape[-1]))
        return [
            (projection(student), teacher)
            for projection, (student, teacher) in zip(self.projections, found, strict=True)
        ]


@register_term
class HiddenMSELoss(_HiddenStatePairs):
    """TinyBERT's hidden-state loss (eq. 8), summed over the layer pairs; each pair's squared
    error is averaged over the real tokens and the teacher's hidden units."""

    name = "hidden_mse"

    def forward(self, context: TermContext) -> torch.Tensor:
        mask = token_mask(context, self.pad_token_id).unsqueeze(-1).float()
        total = context.student_logits.new_zeros(())
        for student, teacher in self.projected_pairs(context):
            squared = (student - teacher).pow(2) * mask
            total = total + squared.sum() / (mask.sum() * teacher.shape[-1]).clamp_min(1)
        return total


@register_term
class HiddenCosineLoss(_HiddenStatePairs):
    """DistilBERT's cosine embedding loss ``1 - cos(h^S W, h^T)`` averaged over real tokens,
    summed over the layer pairs (the last layers by default)."""

    name = "hidden_cosine"

    def __init__(
        self,
        pairs: list[list[str]] | None = None,
        student_layers: int | None = None,
        teacher_layers: int | None = None,
        mapping: Literal["uniform", "last"] = "last",
        layer_path: str = LAYER_PATH,
        pad_token_id: int = 0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(
            pairs, student_layers, teacher_layers, mapping, layer_path, pad_token_id, weight
        )

    def forward(self, context: TermContext) -> torch.Tensor:
        mask = token_mask(context, self.pad_token_id).float()
        total = context.student_logits.new_zeros(())
        for student, teacher in self.projected_pairs(context):
            distance = 1 - F.cosine_similarity(student, teacher, dim=-1)
            total = total + (distance * mask).sum() / mask.sum().clamp_min(1)
        return total


def self_attention_relation(
    first: torch.Tensor, second: torch.Tensor, heads: int, mask: torch.Tensor
) -> torch.Tensor:
    """Log of ``softmax(A B^T / sqrt(d))`` per head: ``first``/``second`` ``[B, L, D]`` split
    into ``heads`` heads of ``d = D / heads``; keys at padding (``mask`` false) get zero
    probability. Returns ``[B, heads, L, L]`` log-probabilities over the last axis."""
    batch, length, width = first.shape
    if width % heads:
        raise KDistillError(
            f"minilm_attention: relation_heads={heads} does not divide the width {width}: pick "
            "a number of heads that divides both models' hidden sizes"
        )
    size = width // heads
    a = first.reshape(batch, length, heads, size).transpose(1, 2)
    b = second.reshape(batch, length, heads, size).transpose(1, 2)
    scores = a @ b.transpose(-1, -2) / math.sqrt(size)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    # Half-precision scores (autocast) are softmaxed in float32; float64 stays float64.
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    return F.log_softmax(scores, dim=-1)


def relation_kl(
    teacher_log: torch.Tensor, student_log: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``KL(teacher || student)`` of each row's distribution ``[B, h, L, L]``, averaged over
    heads and the real query tokens (MiniLM eq. 6: ``1 / (A_h |x|) sum_a sum_t KL``)."""
    teacher_probs = teacher_log.exp()
    # Padded keys have probability 0 on both sides: 0 * (-inf - -inf) must count as 0.
    terms = torch.where(teacher_probs > 0, teacher_probs * (teacher_log - student_log), 0.0)
    per_row = terms.sum(dim=-1)  # [B, h, L]
    rows = mask[:, None, :].float()
    return (per_row * rows).sum() / (rows.sum() * teacher_log.shape[1]).clamp_min(1)


@register_term
class MiniLMAttentionLoss(LossTerm):
    """MiniLM's deep self-attention distillation (eq. 8): ``L_AT + L_VR`` on one student
    layer and one teacher layer (their last, in the paper)."""

    name = "minilm_attention"
    needs_live_teacher = False  # the teacher features it reads may come from a cache

    def __init__(
        self,
        student: str = "encoder.encoder.layer.3",
        teacher: str = "encoder.encoder.layer.5",
        relation_heads: int = 12,
        value_relation: bool = True,
        pad_token_id: int = 0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        self.student_path, self.teacher_path = check_path_pairs(self.name, [[student, teacher]])[0]
        self.relation_heads = relation_heads
        self.value_relation = value_relation
        self.pad_token_id = pad_token_id

    def _path(self, side: str, part: str) -> str:
        layer = self.student_path if side == "student" else self.teacher_path
        return f"{layer}.attention.self.{part}"

    def reads(self) -> list[FeatureRequest]:
        return [
            FeatureRequest(side, self._path(side, part))
            for side in ("student", "teacher")
            for part in ("query", "key", "value")
        ]

    def forward(self, context: TermContext) -> torch.Tensor:
        mask = token_mask(context, self.pad_token_id)
        parts = {
            (side, part): captured_feature(context, self.name, side, self._path(side, part))
            for side in ("student", "teacher")
            for part in ("query", "key", "value")
        }
        relations = [("query", "key")] + ([("value", "value")] if self.value_relation else [])
        total = context.student_logits.new_zeros(())
        for first, second in relations:
            teacher = self_attention_relation(
                parts["teacher", first], parts["teacher", second], self.relation_heads, mask
            )
            student = self_attention_relation(
                parts["student", first], parts["student", second], self.relation_heads, mask
            )
            total = total + relation_kl(teacher, student, mask)
        return total


def _teacher_embeddings(context: TermContext, name: str) -> torch.Tensor:
    teacher = context.teacher_logits
    if teacher is None:
        raise KDistillError(f"the {name!r} term needs a teacher: add distill.teachers")
    if teacher.shape != context.student_logits.shape:
        raise KDistillError(
            f"{name}: the student outputs {list(context.student_logits.shape)} and the teacher "
            f"{list(teacher.shape)}: set the student's model.kwargs.embedding_dim to "
            f"{teacher.shape[-1]}"
        )
    return teacher


@register_term
class EmbeddingCosineLoss(LossTerm):
    """``1 - cos(student embedding, teacher embedding)``, averaged over the batch."""

    name = "embedding_cosine"

    def forward(self, context: TermContext) -> torch.Tensor:
        teacher = _teacher_embeddings(context, self.name)
        return (1 - F.cosine_similarity(context.student_logits, teacher, dim=-1)).mean()


@register_term
class EmbeddingMSELoss(LossTerm):
    """Mean squared error between the student's and the teacher's sentence embeddings."""

    name = "embedding_mse"

    def forward(self, context: TermContext) -> torch.Tensor:
        return F.mse_loss(context.student_logits, _teacher_embeddings(context, self.name))
