"""Text tasks: macro-F1 and k-NN accuracy by hand, batches cut after their last real token,
unlabelled text outside the metrics, cached teacher features equal to the live teacher's."""

import pytest
import torch

from kdistill.data import Split
from kdistill.losses.registry import build_term
from kdistill.methods.distill import Distiller
from kdistill.tasks import create_task
from kdistill.tasks.text_classification import (
    TokenBatchLoader,
    knn_accuracy,
    macro_f1,
    trim_padding,
)
from kdistill.teachers import Teacher, teacher_features_for_split

pytest.importorskip("transformers")
from kdistill.models import create_model  # noqa: E402


def test_macro_f1_by_hand():
    confusion = torch.tensor([[3, 1], [0, 2]])  # [true, predicted]
    f1_first = 2 * 3 / (2 * 3 + 0 + 1)
    f1_second = 2 * 2 / (2 * 2 + 1 + 0)
    assert macro_f1(confusion) == pytest.approx((f1_first + f1_second) / 2)


def test_knn_accuracy_leaves_each_text_out_of_its_own_vote():
    embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.8, 0.2]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    # Nearest neighbour (k = 1): the last text's nearest is a 0 -> wrong; the others right.
    assert knn_accuracy(embeddings, labels, k=1) == pytest.approx(4 / 5)


def test_batches_are_cut_after_their_last_real_token():
    ids = torch.tensor([[101, 5, 102, 0, 0, 0], [101, 102, 0, 0, 0, 0], [101, 4, 4, 4, 102, 0]])
    assert trim_padding(ids[:2]).shape == (2, 3)
    split = Split(ids, torch.tensor([0, 1, -100]))
    loader = TokenBatchLoader(split, 2, shuffle=False)
    shapes = [tuple(batch.inputs.shape) for batch in loader]
    assert shapes == [(2, 3), (1, 5)]


def _tiny_bert(**kwargs):
    torch.manual_seed(0)
    return create_model(
        "bert", layers=2, hidden=16, heads=4, vocab_size=50, max_positions=16, **kwargs
    )


def test_evaluation_counts_only_labelled_texts_and_reports_macro_f1():
    split = Split(torch.randint(1, 50, (6, 8)), torch.tensor([0, 1, 2, -100, 3, -100]))
    result = create_task("text-classification").evaluate(
        _tiny_bert(), split, 4, torch.device("cpu")
    )
    summary = result.summary()
    assert summary["total"] == 4 and 0 <= summary["macro_f1"] <= 1


def test_cached_teacher_features_give_the_live_teachers_loss():
    torch.manual_seed(1)
    ids = torch.randint(1, 50, (6, 10))
    ids[3:, 6:] = 0  # short texts, padded
    split = Split(ids, torch.tensor([0, 1, 2, 3, 4, -100]))
    teacher = Teacher([_tiny_bert()])
    terms = [
        build_term(
            "minilm_attention",
            student="encoder.encoder.layer.1",
            teacher="encoder.encoder.layer.1",
            relation_heads=4,
        ),
        build_term("hidden_mse", student_layers=2, teacher_layers=2),
    ]
    requests = sorted({r for term in terms for r in term.reads() if r.side == "teacher"}, key=str)
    cached = teacher_features_for_split(
        teacher.members[0], split, [(r.path, r.kind) for r in requests]
    )
    batch = next(iter(TokenBatchLoader(split.subset(torch.tensor([3, 4, 5])), 3, shuffle=False)))
    batch.indices = torch.tensor([3, 4, 5])  # positions in the full split
    assert batch.inputs.shape[1] == 6
    student = _tiny_bert(dropout=0.0).eval()
    live = Distiller(student, teacher, terms)
    live.eval()
    live_losses = live(batch).losses
    from_cache = Distiller(
        student,
        teacher,
        terms,
        cached_teacher_features={r: cached[(r.path, r.kind)] for r in requests},
    )
    from_cache.eval()
    cache_losses = from_cache(batch).losses
    for name, value in live_losses.items():
        assert float(cache_losses[name]) == pytest.approx(float(value), rel=1e-4, abs=1e-6)
