"""Cached and live teachers give the same loss; the cache key follows weights, data and transform."""

import torch

from kdistill.data import BatchLoader
from kdistill.losses.logits import HardTargetLoss, SoftTargetLoss
from kdistill.methods.distill import Distiller
from kdistill.models import create_model
from kdistill.teachers import Teacher, teacher_logits_for_split


def _teacher(seed):
    torch.manual_seed(seed)
    return Teacher([create_model("mlp", hidden_sizes=[64], input_dropout=0.2, hidden_dropout=0.5)])


def test_cached_and_live_teacher_give_the_same_loss(tmp_path, mnist):
    split = mnist.train.subset(torch.arange(500))
    teacher = _teacher(0)
    cached = teacher_logits_for_split(teacher, split, tmp_path, batch_size=128)
    assert cached.shape == (1, 500, 10)
    torch.manual_seed(1)
    student = create_model("mlp", hidden_sizes=[32])
    terms = [SoftTargetLoss(1.0, temperature=4.0), HardTargetLoss(0.1)]
    live = Distiller(student, teacher, terms)
    from_cache = Distiller(student, teacher, terms, cached_teacher_logits=cached)
    loader = BatchLoader(split, 100, shuffle=True, seed=3)
    loader.set_epoch(0)
    batch = next(iter(loader))
    live.train()
    from_cache.train()
    student.eval()  # the same student forward for both
    a, b = live(batch), from_cache(batch)
    assert not teacher.training  # train() never takes the teacher out of eval mode
    for name in a.losses:
        torch.testing.assert_close(a.losses[name], b.losses[name], rtol=1e-5, atol=1e-6)


def test_cache_is_reused_and_keyed_by_teacher_weights(tmp_path, mnist):
    split = mnist.train.subset(torch.arange(200))
    first = teacher_logits_for_split(_teacher(0), split, tmp_path)
    files = list((tmp_path / "teacher-logits").glob("*.safetensors"))
    assert len(files) == 1
    again = teacher_logits_for_split(_teacher(0), split, tmp_path)
    torch.testing.assert_close(first, again)
    assert len(list((tmp_path / "teacher-logits").glob("*.safetensors"))) == 1
    other = teacher_logits_for_split(_teacher(1), split, tmp_path)
    assert not torch.allclose(first, other)
    teacher_logits_for_split(_teacher(0), split, tmp_path, transform="shift2")
    assert len(list((tmp_path / "teacher-logits").glob("*.safetensors"))) == 3


def test_ensemble_teacher_stacks_members_and_stays_frozen():
    teacher = Teacher([create_model("mlp", hidden_sizes=[8]) for _ in range(3)])
    teacher.train()
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert teacher(torch.rand(5, 1, 28, 28)).shape == (3, 5, 10)


def test_after_step_constrains_the_student_but_never_the_frozen_teacher():
    teacher_model = create_model("mlp", hidden_sizes=[8], max_norm=0.1)
    student = create_model("mlp", hidden_sizes=[8], max_norm=0.1)
    with torch.no_grad():
        teacher_model.layers[1].weight.fill_(1.0)
        student.layers[1].weight.fill_(1.0)
    before = teacher_model.layers[1].weight.clone()
    distiller = Distiller(student, Teacher([teacher_model]), [SoftTargetLoss()])
    distiller.after_step()
    torch.testing.assert_close(teacher_model.layers[1].weight, before)
    assert student.layers[1].weight.norm(dim=1).max().item() <= 0.1 + 1e-6


def test_evaluate_ensemble_matches_a_hand_average(mnist):
    from kdistill.tasks import predict_logits
    from kdistill.teachers import evaluate_teacher

    split = mnist.test.subset(torch.arange(300))
    teacher = Teacher([create_model("mlp", hidden_sizes=[16]) for _ in range(2)])
    for rule, combine in (
        ("arithmetic", lambda p: p.mean(0)),
        ("geometric", lambda p: p.log().mean(0).exp()),
    ):
        result, members = evaluate_teacher(teacher, split, rule)
        probabilities = torch.stack([predict_logits(m, split).softmax(-1) for m in teacher.members])
        expected = int((combine(probabilities).argmax(-1) != split.labels).sum())
        assert result.errors == expected
        assert [m.errors for m in members] == [
            int((p.argmax(-1) != split.labels).sum()) for p in probabilities
        ]
