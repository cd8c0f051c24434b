"""random_shift and BatchLoader: exact offsets, coverage, determinism per (seed, epoch)."""

import pytest
import torch

from kdistill.data import Batch, BatchLoader, Split, random_shift
from kdistill.data.batches import draw_shifts, shift_images
from kdistill.errors import KDistillError


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _lit_pixel_batch(batch, size=9, row=4, col=4):
    images = torch.zeros(batch, 2, size, size)
    images[:, :, row, col] = 1.0
    return images


def test_random_shift_moves_a_lit_pixel_by_exactly_the_drawn_offsets():
    images = _lit_pixel_batch(400)
    out = random_shift(images, 2, _generator(7))
    dx, dy = draw_shifts(400, 2, _generator(7))  # same generator state -> same draws
    assert out.shape == images.shape
    for channel in range(2):
        flat = out[:, channel].reshape(400, -1)
        assert torch.all(flat.sum(1) == 1.0)  # mass preserved, pixel away from the border
        where = flat.argmax(1)
        assert torch.equal(where // 9, 4 + dy) and torch.equal(where % 9, 4 + dx)
    assert int(dx.abs().max()) <= 2 and int(dy.abs().max()) <= 2
    # 400 draws from 25 offsets: every one of them shows up, and nothing beyond.
    assert len(set(zip(dx.tolist(), dy.tolist(), strict=True))) == 25


def test_shift_direction_and_vacated_pixels():
    image = torch.arange(1, 17, dtype=torch.float32).reshape(1, 1, 4, 4)
    right_down = shift_images(image, torch.tensor([1]), torch.tensor([2]))
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 2:, 1:] = image[0, 0, :2, :3]
    assert torch.equal(right_down, expected)
    left_up = shift_images(image, torch.tensor([-1]), torch.tensor([-1]))
    assert torch.equal(left_up[0, 0, :3, :3], image[0, 0, 1:, 1:])
    assert left_up[0, 0, 3].abs().sum() == 0 and left_up[0, 0, :, 3].abs().sum() == 0


def test_shift_off_the_border_loses_the_pixel():
    images = _lit_pixel_batch(1, size=5, row=0, col=4)
    out = shift_images(images, torch.tensor([1]), torch.tensor([0]))
    assert out.sum() == 0


def test_max_shift_zero_is_identity_and_negative_is_refused():
    images = torch.rand(3, 1, 5, 5)
    assert random_shift(images, 0, _generator(0)) is images
    with pytest.raises(KDistillError, match="max_shift"):
        random_shift(images, -1, _generator(0))


def _split(n=23, classes=4):
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, 1, 3, 3).clone()
    return Split(inputs=images, labels=torch.arange(n) % classes)


def _collect(loader, epoch):
    loader.set_epoch(epoch)
    return [batch.indices.clone() for batch in loader]


def test_loader_covers_every_index_once_and_batches_match_the_split():
    split = _split()
    loader = BatchLoader(split, 5, shuffle=True, seed=3)
    assert len(loader) == 5
    batches = list(loader)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    seen = torch.cat([b.indices for b in batches])
    assert sorted(seen.tolist()) == list(range(23))
    for batch in batches:
        assert batch.inputs.dtype == torch.float32 and batch.inputs.shape[1:] == (1, 3, 3)
        expected = split.inputs[batch.indices].float() / 255
        assert torch.equal(batch.inputs, expected)
        assert torch.equal(batch.labels, split.labels[batch.indices])
        assert batch.indices.dtype == torch.int64 and batch.labels.dtype == torch.int64


def test_same_seed_and_epoch_give_the_same_batches_after_a_resume():
    split = _split()
    run = BatchLoader(split, 4, shuffle=True, seed=11, max_shift=1)
    resumed = BatchLoader(split, 4, shuffle=True, seed=11, max_shift=1)
    run.set_epoch(0)
    list(run)  # epoch 0 consumed by the uninterrupted run only
    run.set_epoch(1)
    resumed.set_epoch(1)
    for a, b in zip(run, resumed, strict=True):
        assert torch.equal(a.indices, b.indices) and torch.equal(a.inputs, b.inputs)


def test_epoch_and_seed_change_the_order():
    loader = BatchLoader(_split(), 23, shuffle=True, seed=0)
    e0, e1 = _collect(loader, 0)[0], _collect(loader, 1)[0]
    assert not torch.equal(e0, e1)
    assert torch.equal(e0, _collect(loader, 0)[0])
    other = BatchLoader(_split(), 23, shuffle=True, seed=1)
    assert not torch.equal(e0, _collect(other, 0)[0])


def test_no_shuffle_drop_last_and_to():
    loader = BatchLoader(_split(n=10), 4, shuffle=False, drop_last=True)
    assert len(loader) == 2
    batches = list(loader)
    assert torch.equal(torch.cat([b.indices for b in batches]), torch.arange(8))
    moved = batches[0].to("cpu")
    assert isinstance(moved, Batch) and torch.equal(moved.labels, batches[0].labels)
    assert len(BatchLoader(_split(n=10), 4, shuffle=False)) == 3


def test_jitter_is_applied_per_epoch():
    split = Split(torch.zeros(64, 1, 7, 7, dtype=torch.uint8), torch.zeros(64, dtype=torch.long))
    split.inputs[:, 0, 3, 3] = 255
    loader = BatchLoader(split, 64, shuffle=False, max_shift=2)
    first = next(iter(loader)).inputs
    assert torch.all(first.sum((1, 2, 3)) == 1.0)
    assert (first[:, 0, 3, 3] == 1.0).sum() < 64  # most images moved
    loader.set_epoch(1)
    assert not torch.equal(first, next(iter(loader)).inputs)


def test_bad_batch_size():
    with pytest.raises(KDistillError, match="batch_size must be ≥ 1, got 0"):
        BatchLoader(_split(), 0, shuffle=True)


def test_balanced_batches_are_half_from_the_subset_and_visit_it_once_per_epoch():
    from kdistill.data import BalancedBatchLoader, Split

    labels = torch.arange(100) % 10
    split = Split(torch.arange(100, dtype=torch.float32)[:, None], labels)
    inside = labels < 2  # 20 examples
    loader = BalancedBatchLoader(split, 10, inside, share=0.5, seed=3)
    loader.set_epoch(0)
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    seen = torch.cat([b.indices[:5] for b in batches])
    assert sorted(seen.tolist()) == torch.nonzero(inside).flatten().tolist()
    for batch in batches:
        assert (batch.labels[:5] < 2).all() and (batch.labels[5:] >= 2).all()
        assert torch.equal(batch.inputs[:, 0].long(), batch.indices)
    again = list(loader)
    assert all(torch.equal(a.indices, b.indices) for a, b in zip(batches, again, strict=True))
    loader.set_epoch(1)
    assert not torch.equal(next(iter(loader)).indices, batches[0].indices)


def test_an_uneven_split_of_the_global_batch_weights_each_share_by_its_size():
    split = Split(torch.zeros(7, 1, 2, 2, dtype=torch.uint8), torch.arange(7))
    shares = []
    for rank in (0, 1):
        loader = BatchLoader(split, 5, shuffle=False, rank=rank, world_size=2)
        shares.append([(len(batch), batch.share) for batch in loader])
    # Batches of 5 and 2: 2 + 3 and 1 + 1 examples; the engine scales a process's mean loss
    # by share, so (share_0 * mean_0 + share_1 * mean_1) / 2 is the mean over the 5.
    assert shares == [[(2, 0.8), (1, 1.0)], [(3, 1.2), (1, 1.0)]]
    alone = BatchLoader(split, 5, shuffle=False)
    assert [batch.share for batch in alone] == [1.0, 1.0]
