"""carve_validation, keep_classes and take_fraction: exact counts and determinism."""

import pytest
import torch

from kdistill.data import Split, carve_validation, keep_classes, take_fraction
from kdistill.errors import KDistillError

COUNTS = [1000, 500, 300, 200]  # deliberately unbalanced


def _split():
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(COUNTS)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    images = torch.arange(len(labels)).remainder(256).to(torch.uint8).reshape(-1, 1, 1, 1)
    return Split(inputs=images, labels=labels)


def test_take_fraction_is_stratified_and_deterministic():
    split = _split()
    part = take_fraction(split, 0.03, seed=5)
    assert len(part) == 60
    assert torch.bincount(part.labels).tolist() == [30, 15, 9, 6]
    again = take_fraction(split, 0.03, seed=5)
    assert torch.equal(part.labels, again.labels) and torch.equal(part.inputs, again.inputs)
    other = take_fraction(split, 0.03, seed=6)
    assert not torch.equal(part.inputs, other.inputs)
    assert take_fraction(split, 1.0, seed=0) is split


def test_take_fraction_rounding_keeps_the_total():
    part = take_fraction(_split(), 0.0013, seed=0)  # 2.6 -> 3 examples over 4 classes
    assert len(part) == 3 and torch.bincount(part.labels, minlength=4).tolist() == [2, 1, 0, 0]


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_take_fraction_refuses_bad_fractions(fraction):
    with pytest.raises(KDistillError, match=r"fraction must be in \(0, 1\]"):
        take_fraction(_split(), fraction, seed=0)


def test_take_fraction_of_real_mnist(mnist):
    part = take_fraction(mnist.train, 0.03, seed=0)
    assert len(part) == 1800
    full = mnist.train.class_counts().double()
    assert torch.all((part.class_counts().double() - full * 0.03).abs() < 1.0)


def test_keep_classes_omits_threes_and_keeps_order_and_labels():
    split = _split()
    kept = keep_classes(split, [0, 1, 2])
    assert len(kept) == 1800 and 3 not in kept.labels.tolist()
    mask = split.labels != 3
    assert torch.equal(kept.labels, split.labels[mask])
    assert torch.equal(kept.inputs, split.inputs[mask])
    with pytest.raises(KDistillError, match=r"classes \[7\] do not occur"):
        keep_classes(split, [0, 7])
    with pytest.raises(KDistillError, match="empty class list"):
        keep_classes(split, [])


def test_carve_validation_partitions_deterministically():
    split = _split()
    rest, validation = carve_validation(split, 200, seed=1)
    assert len(rest) == 1800 and len(validation) == 200
    assert torch.bincount(validation.labels).tolist() == [100, 50, 30, 20]
    # Images encode position mod 256, so compare label+image multisets: a partition of the split.
    pairs = lambda s: sorted(zip(s.labels.tolist(), s.inputs.flatten().tolist(), strict=True))  # noqa: E731
    assert sorted(pairs(rest) + pairs(validation)) == pairs(split)
    rest2, validation2 = carve_validation(split, 200, seed=1)
    assert torch.equal(validation.inputs, validation2.inputs) and torch.equal(
        rest.labels, rest2.labels
    )
    _, validation3 = carve_validation(split, 200, seed=2)
    assert not torch.equal(validation.inputs, validation3.inputs)


@pytest.mark.parametrize("size", [0, 2000, 5000])
def test_carve_validation_refuses_bad_sizes(size):
    with pytest.raises(KDistillError, match=f"validation size {size} must be between 1 and 1999"):
        carve_validation(_split(), size, seed=0)
