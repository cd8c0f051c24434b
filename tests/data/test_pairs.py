"""MNIST-100: pairs of digits side by side, train pairs from train digits only, test pairs from
test digits only, every class in both, the same pairs from the same seed (and from the cache)."""

import pytest
import torch

from kdistill.data import DataSet, Split
from kdistill.data import pairs as pairs_module
from kdistill.data.pairs import digit_pairs, load_mnist_100
from kdistill.errors import KDistillError


def _digits(count: int, marker: int) -> Split:
    """Digits whose pixels say their class (left column) and their split (every other pixel)."""
    labels = torch.arange(count) % 10
    images = torch.full((count, 1, 28, 28), marker, dtype=torch.uint8)
    images[:, 0, :, 0] = labels[:, None].to(torch.uint8)
    return Split(images, labels)


def test_a_pair_is_its_two_digits_side_by_side_labelled_tens_and_units():
    pairs = digit_pairs(_digits(50, 200), 300, torch.Generator().manual_seed(0))
    assert pairs.inputs.shape == (300, 1, 28, 56)
    assert torch.equal(pairs.inputs[:, 0, 0, 0].long(), pairs.labels // 10)
    assert torch.equal(pairs.inputs[:, 0, 0, 28].long(), pairs.labels % 10)
    assert torch.equal(torch.bincount(pairs.labels, minlength=100), torch.full((100,), 3))


def test_too_few_pairs_for_every_class_are_refused():
    with pytest.raises(KDistillError, match="at least 100"):
        digit_pairs(_digits(50, 1), 99, torch.Generator())


def test_mnist_100_draws_each_split_from_its_own_digits_and_is_cached(tmp_path, monkeypatch):
    fake = DataSet("mnist", _digits(600, 101), _digits(100, 202), 10, "f" * 64)
    monkeypatch.setattr(pairs_module, "load_mnist", lambda **_: fake)
    built = load_mnist_100(cache_dir=tmp_path, sizes=(1000, 200))
    assert built.num_classes == 100 and (len(built.train), len(built.test)) == (1000, 200)
    assert set(built.train.inputs[:, 0, :, 1:28].unique().tolist()) == {101}
    assert set(built.test.inputs[:, 0, :, 1:28].unique().tolist()) == {202}
    for split in (built.train, built.test):
        assert torch.bincount(split.labels, minlength=100).min() > 0
    assert (tmp_path / "datasets" / "mnist-100.npz").exists()
    again = load_mnist_100(cache_dir=tmp_path, sizes=(1000, 200))
    assert again.fingerprint == built.fingerprint
    assert torch.equal(again.train.inputs, built.train.inputs)
    (tmp_path / "datasets" / "mnist-100.npz").unlink()
    rebuilt = load_mnist_100(cache_dir=tmp_path, sizes=(1000, 200))
    assert rebuilt.fingerprint == built.fingerprint
    other_seed = load_mnist_100(cache_dir=tmp_path / "other", sizes=(1000, 200), seed=1)
    assert other_seed.fingerprint != built.fingerprint
