"""Token divergences of causal-LM distillation against hand values: forward and reverse KL,
the generalised JSD and its limits, the sparse top-k form, masking of padding."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.losses.causal_lm import (
    collapse_to_top_k,
    forward_kl,
    generalized_jsd,
    masked_token_mean,
    next_token_cross_entropy,
    reverse_kl,
    teacher_top_k,
    token_divergence,
)

P = [0.5, 0.3, 0.2]
Q = [0.25, 0.25, 0.5]


def _log(values):
    return torch.tensor([[values]]).log()  # [1, 1, V]


def _hand_kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b, strict=True))


def test_forward_and_reverse_kl_by_hand():
    assert float(forward_kl(_log(P), _log(Q))) == pytest.approx(_hand_kl(P, Q))
    assert float(reverse_kl(_log(P), _log(Q))) == pytest.approx(_hand_kl(Q, P))


def test_generalized_jsd_by_hand_and_symmetric_at_one_half():
    beta = 0.3
    mixture = [beta * p + (1 - beta) * q for p, q in zip(P, Q, strict=True)]
    hand = beta * _hand_kl(P, mixture) + (1 - beta) * _hand_kl(Q, mixture)
    assert float(generalized_jsd(_log(P), _log(Q), beta)) == pytest.approx(hand, rel=1e-6)
    assert float(generalized_jsd(_log(P), _log(Q), 0.5)) == pytest.approx(
        float(generalized_jsd(_log(Q), _log(P), 0.5)), rel=1e-6
    )


def test_jsd_limits_are_forward_and_reverse_kl():
    teacher, student = _log(P).double(), _log(Q).double()
    small = 1e-6
    assert float(generalized_jsd(teacher, student, small)) / small == pytest.approx(
        float(forward_kl(teacher, student)), rel=1e-4
    )
    assert float(generalized_jsd(teacher, student, 1 - small)) / small == pytest.approx(
        float(reverse_kl(teacher, student)), rel=1e-4
    )
    with pytest.raises(KDistillError, match="0 < beta < 1"):
        generalized_jsd(teacher, student, 1.0)


def test_sparse_top_k_equals_dense_when_k_is_the_vocabulary():
    torch.manual_seed(0)
    teacher_logits, student_logits = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    dense_teacher = F.log_softmax(teacher_logits, dim=-1)
    student = F.log_softmax(student_logits, dim=-1)
    top, ids = teacher_top_k(teacher_logits, 11)
    sparse_teacher, sparse_student = collapse_to_top_k(top, ids, student)
    for kind in ("forward_kl", "reverse_kl", "jsd"):
        dense = token_divergence(kind, dense_teacher, student, 0.4)
        sparse = token_divergence(kind, sparse_teacher, sparse_student, 0.4)
        assert torch.allclose(dense, sparse, atol=1e-5), kind


def test_sparse_top_k_is_the_kl_of_the_collapsed_distributions():
    p = [0.6, 0.2, 0.1, 0.1]
    q = [0.3, 0.3, 0.3, 0.1]
    top, ids = teacher_top_k(_log(p), 2)  # tokens 0 and 1, rest 0.2 (teacher) / 0.4 (student)
    teacher, student = collapse_to_top_k(top, ids, _log(q))
    hand = _hand_kl([0.6, 0.2, 0.2], [0.3, 0.3, 0.4])
    assert float(forward_kl(teacher, student)) == pytest.approx(hand, rel=1e-5)
    # A lower bound of the dense KL (data processing inequality).
    assert hand < _hand_kl(p, q)


def test_padding_positions_do_not_count():
    values = torch.tensor([[1.0, 2.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    assert float(masked_token_mean(values, mask)) == pytest.approx(1.5)
    logits = torch.randn(1, 3, 7)
    targets = torch.tensor([[1, 2, 0]])
    expected = F.cross_entropy(logits[0, :2], targets[0, :2])
    assert float(next_token_cross_entropy(logits, targets, mask)) == pytest.approx(
        float(expected), rel=1e-6
    )


def test_kl_gradients_match_finite_differences():
    teacher = F.log_softmax(torch.randn(1, 2, 5, dtype=torch.double), dim=-1)
    logits = torch.randn(1, 2, 5, dtype=torch.double, requires_grad=True)
    for kind in ("forward_kl", "reverse_kl", "jsd"):
        assert torch.autograd.gradcheck(
            lambda z, kind=kind: token_divergence(
                kind, teacher, F.log_softmax(z, dim=-1), 0.3
            ).sum(),
            (logits,),
        )
