"""Transformer distillation terms against hand computations: TinyBERT hidden MSE, DistilBERT
hidden cosine, MiniLM attention/value-relation KL, sentence-embedding terms, layer mapping,
masking of padding, gradients."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, TermContext
from kdistill.losses.language import (
    EmbeddingCosineLoss,
    EmbeddingMSELoss,
    HiddenCosineLoss,
    HiddenMSELoss,
    MiniLMAttentionLoss,
    relation_kl,
    self_attention_relation,
    uniform_layer_pairs,
)
from kdistill.losses.logits import HardTargetLoss
from kdistill.losses.registry import build_term


def _context(ids, features, student_logits=None, teacher_logits=None, labels=None):
    batch = ids.shape[0]
    return TermContext(
        inputs=ids,
        labels=labels if labels is not None else torch.zeros(batch, dtype=torch.long),
        student_logits=student_logits if student_logits is not None else torch.zeros(batch, 3),
        teacher_member_logits=None if teacher_logits is None else teacher_logits[None],
        student=nn.Identity(),
        features=features,
    )


def test_uniform_mapping_is_tinyberts_g_of_m():
    assert uniform_layer_pairs(2, 6, "l.{}") == [("l.0", "l.2"), ("l.1", "l.5")]
    assert uniform_layer_pairs(4, 6, "l.{}") == [
        ("l.0", "l.0"),
        ("l.1", "l.2"),
        ("l.2", "l.3"),
        ("l.3", "l.5"),
    ]
    with pytest.raises(KDistillError, match="student needs"):
        uniform_layer_pairs(7, 6)


def _hand_relation_kl(teacher_a, teacher_b, student_a, student_b, mask):
    """Loops over examples, real query rows and real keys (one head)."""
    total, rows = 0.0, 0
    for n in range(teacher_a.shape[0]):
        real = [t for t in range(teacher_a.shape[1]) if mask[n, t]]
        d = teacher_a.shape[-1]
        for t in real:
            ts = [float(teacher_a[n, t] @ teacher_b[n, k]) / math.sqrt(d) for k in real]
            ss = [
                float(student_a[n, t] @ student_b[n, k]) / math.sqrt(student_a.shape[-1])
                for k in real
            ]
            tz = sum(math.exp(v) for v in ts)
            sz = sum(math.exp(v) for v in ss)
            p = [math.exp(v) / tz for v in ts]
            q = [math.exp(v) / sz for v in ss]
            total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
            rows += 1
    return total / rows


def test_attention_relation_kl_matches_a_hand_computation_with_padding():
    torch.manual_seed(0)
    ids = torch.tensor([[101, 7, 9, 102], [101, 5, 102, 0]])
    mask = ids != 0
    tq, tk = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    sq, sk = torch.randn(2, 4, 2), torch.randn(2, 4, 2)
    computed = relation_kl(
        self_attention_relation(tq, tk, 1, mask), self_attention_relation(sq, sk, 1, mask), mask
    )
    assert float(computed) == pytest.approx(_hand_relation_kl(tq, tk, sq, sk, mask), rel=1e-5)


def test_relation_heads_are_the_mean_of_each_heads_kl():
    torch.manual_seed(1)
    mask = torch.ones(1, 5, dtype=torch.bool)
    t, s = torch.randn(1, 5, 6), torch.randn(1, 5, 4)
    both = relation_kl(
        self_attention_relation(t, t, 2, mask), self_attention_relation(s, s, 2, mask), mask
    )
    per_head = [
        relation_kl(
            self_attention_relation(t[..., 3 * h : 3 * h + 3], t[..., 3 * h : 3 * h + 3], 1, mask),
            self_attention_relation(s[..., 2 * h : 2 * h + 2], s[..., 2 * h : 2 * h + 2], 1, mask),
            mask,
        )
        for h in range(2)
    ]
    assert float(both) == pytest.approx(float(sum(per_head)) / 2, rel=1e-5)


def _minilm_features(student, teacher, s_layer="s", t_layer="t"):
    features = {}
    for side, layer, (q, k, v) in (("student", s_layer, student), ("teacher", t_layer, teacher)):
        for part, value in zip(("query", "key", "value"), (q, k, v), strict=True):
            features[FeatureRequest(side, f"{layer}.attention.self.{part}")] = value
    return features


def test_minilm_term_is_attention_plus_value_relation_and_zero_for_a_copy():
    torch.manual_seed(2)
    ids = torch.tensor([[101, 4, 5, 6, 102, 0, 0]])
    mask = ids != 0
    teacher = [torch.randn(1, 7, 8) for _ in range(3)]
    student = [torch.randn(1, 7, 4) for _ in range(3)]
    term = MiniLMAttentionLoss(student="s", teacher="t", relation_heads=2)
    value = term(_context(ids, _minilm_features(student, teacher)))
    attention = relation_kl(
        self_attention_relation(teacher[0], teacher[1], 2, mask),
        self_attention_relation(student[0], student[1], 2, mask),
        mask,
    )
    values = relation_kl(
        self_attention_relation(teacher[2], teacher[2], 2, mask),
        self_attention_relation(student[2], student[2], 2, mask),
        mask,
    )
    assert float(value) == pytest.approx(float(attention + values), rel=1e-6)
    same = term(_context(ids, _minilm_features(teacher, teacher)))
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def test_minilm_term_ignores_padding_and_values_at_padded_positions():
    torch.manual_seed(3)
    short = torch.tensor([[101, 4, 5, 102]])
    long = torch.tensor([[101, 4, 5, 102, 0, 0]])
    teacher = [torch.randn(1, 6, 8) for _ in range(3)]
    student = [torch.randn(1, 6, 4) for _ in range(3)]
    term = MiniLMAttentionLoss(student="s", teacher="t", relation_heads=2)
    cut = term(
        _context(short, _minilm_features([x[:, :4] for x in student], [x[:, :4] for x in teacher]))
    )
    padded = term(_context(long, _minilm_features(student, teacher)))
    assert float(cut) == pytest.approx(float(padded), rel=1e-6)


def test_relation_kl_gradient_matches_finite_differences():
    torch.manual_seed(4)
    mask = torch.tensor([[True, True, True, False]])
    teacher = self_attention_relation(
        torch.randn(1, 4, 4).double(), torch.randn(1, 4, 4).double(), 2, mask
    )
    query = torch.randn(1, 4, 2, dtype=torch.double, requires_grad=True)
    key = torch.randn(1, 4, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda q, k: relation_kl(teacher, self_attention_relation(q, k, 2, mask), mask),
        (query, key),
    )


def test_hidden_mse_is_the_masked_mean_square_through_the_projection():
    torch.manual_seed(5)
    ids = torch.tensor([[101, 4, 102, 0], [101, 4, 5, 102]])
    mask = (ids != 0).float()
    student = torch.randn(2, 4, 3, requires_grad=True)
    teacher = torch.randn(2, 4, 5)
    term = HiddenMSELoss(pairs=[["s", "t"]])
    features = {FeatureRequest("student", "s"): student, FeatureRequest("teacher", "t"): teacher}
    term(_context(ids, features))  # builds the 3 -> 5 projection
    projection = term.projections[0]
    value = term(_context(ids, features))
    projected = projection(student)
    hand = (((projected - teacher) ** 2).sum(-1) * mask).sum() / (mask.sum() * 5)
    assert float(value.detach()) == pytest.approx(float(hand.detach()), rel=1e-6)
    value.backward()
    expected = 2 * (projected - teacher) * mask[..., None] / (mask.sum() * 5) @ projection.weight
    assert torch.allclose(student.grad, expected.detach(), atol=1e-6)


def test_hidden_cosine_is_one_minus_cosine_over_real_tokens():
    ids = torch.tensor([[101, 102, 0]])
    student = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    teacher = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]])
    term = HiddenCosineLoss(pairs=[["s", "t"]])
    features = {FeatureRequest("student", "s"): student, FeatureRequest("teacher", "t"): teacher}
    term(_context(ids, features))
    with torch.no_grad():
        term.projections[0].weight.copy_(torch.eye(2))
        term.projections[0].bias.zero_()
    # Token 1: cos 1 -> 0; token 2: cos 0 -> 1; token 3 is padding.
    assert float(term(_context(ids, features)).detach()) == pytest.approx(0.5)


def test_layer_mapping_options_build_the_pairs():
    assert build_term("hidden_mse", student_layers=2, teacher_layers=6).pairs == [
        ("encoder.encoder.layer.0", "encoder.encoder.layer.2"),
        ("encoder.encoder.layer.1", "encoder.encoder.layer.5"),
    ]
    assert build_term("hidden_cosine", student_layers=2, teacher_layers=6).pairs == [
        ("encoder.encoder.layer.1", "encoder.encoder.layer.5")
    ]
    with pytest.raises(KDistillError, match="give pairs"):
        build_term("hidden_mse")


def test_embedding_terms_by_hand():
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    context = _context(torch.ones(2, 2, dtype=torch.long), {}, student, teacher)
    assert float(EmbeddingCosineLoss()(context)) == pytest.approx((1 - 1 / math.sqrt(2)) / 2)
    assert float(EmbeddingMSELoss()(context)) == pytest.approx((0 + 1 + 0 + 1) / 4)
    wrong = _context(torch.ones(2, 2, dtype=torch.long), {}, student, torch.ones(2, 3))
    with pytest.raises(KDistillError, match="embedding_dim to 3"):
        EmbeddingCosineLoss()(wrong)


def test_hard_targets_skip_unlabelled_text_and_never_give_nan():
    logits = torch.randn(4, 3)
    labels = torch.tensor([2, -100, 0, -100])
    context = _context(torch.ones(4, 2, dtype=torch.long), {}, logits, labels=labels)
    expected = F.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert float(HardTargetLoss()(context)) == pytest.approx(float(expected), rel=1e-6)
    none = _context(
        torch.ones(2, 2, dtype=torch.long), {}, logits[:2], labels=torch.full((2,), -100)
    )
    assert float(HardTargetLoss()(none)) == 0.0
