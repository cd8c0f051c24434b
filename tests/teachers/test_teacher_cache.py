"""Cached and live teachers give the same loss, also for jittered batches (one cache entry per
shift); the cache key follows weights, data and the augmentation."""

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
    shifted = teacher_logits_for_split(_teacher(0), split, tmp_path, max_shift=1)
    assert shifted.shape == (1, 9, 200, 10)
    assert len(list((tmp_path / "teacher-logits").glob("*.safetensors"))) == 3
    # The unshifted offset (code 4 of the 3 x 3 grid) is the plain cache's logits.
    torch.testing.assert_close(shifted[:, 4], first, rtol=1e-5, atol=1e-5)


def test_shift_cache_gives_the_live_teachers_loss_on_a_jittered_batch(tmp_path, mnist):
    split = mnist.train.subset(torch.arange(400))
    teacher = _teacher(0)
    cached = teacher_logits_for_split(teacher, split, tmp_path, max_shift=2, batch_size=128)
    assert cached.shape == (1, 25, 400, 10)
    torch.manual_seed(1)
    student = create_model("mlp", hidden_sizes=[32])
    terms = [SoftTargetLoss(1.0, temperature=4.0), HardTargetLoss(0.1)]
    live = Distiller(student, teacher, terms)
    from_cache = Distiller(student, teacher, terms, cached_teacher_logits=cached)
    loader = BatchLoader(split, 100, shuffle=True, seed=3, max_shift=2)
    loader.set_epoch(5)
    batch = next(iter(loader))
    assert batch.offsets is not None and len(set(batch.offsets.tolist())) > 10
    student.eval()
    a, b = live(batch), from_cache(batch)
    for name in a.losses:
        torch.testing.assert_close(a.losses[name], b.losses[name], rtol=1e-5, atol=1e-6)
    # Looking the logits up under the wrong shifts changes the soft loss: the offsets matter.
    batch.offsets = batch.offsets.flip(0)
    assert not torch.allclose(a.losses["soft_targets"], from_cache(batch).losses["soft_targets"])


def test_offset_codes_number_the_grid_in_order():
    from kdistill.data import offset_codes, offset_grid

    grid = offset_grid(2)
    assert len(grid) == 25 and grid[0] == (-2, -2) and grid[12] == (0, 0) and grid[24] == (2, 2)
    dx = torch.tensor([dx for dx, _ in grid])
    dy = torch.tensor([dy for _, dy in grid])
    assert offset_codes(dx, dy, 2).tolist() == list(range(25))


def test_cache_is_used_for_jitter_only_when_the_run_repays_one_pass_per_shift():
    from kdistill.losses.features import HintLoss
    from kdistill.methods.distill import use_cached_logits

    terms = [SoftTargetLoss(1.0)]
    assert use_cached_logits(terms, max_shift=0, epochs=1)
    assert not use_cached_logits(terms, max_shift=2, epochs=24)
    assert use_cached_logits(terms, max_shift=2, epochs=25)
    assert use_cached_logits(terms, max_shift=2, choice="always", epochs=1)
    assert not use_cached_logits(terms, max_shift=0, choice="never")
    hint = [HintLoss(student="layers.1", teacher="layers.1")]
    assert not use_cached_logits(hint, max_shift=0)


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
