"""MNIST-100: two real MNIST digits side by side (28 x 56), the class the two-digit number 00-99.

A many-class task from real handwriting for the specialists of Hinton et al. (2015, section 5),
whose confusions have structure (``38`` is confused with ``88`` and ``33``, not with ``71``).
Training pairs are drawn only from MNIST training digits and test pairs only from test digits;
each class occurs equally often in both splits; the pairs are a function of the seed alone.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdistill.data.cache import load_cached, save_cached
from kdistill.data.dataset import DataSet, Split, compute_fingerprint
from kdistill.data.mnist import load_mnist
from kdistill.errors import KDistillError
from kdistill.files import cache_dir as default_cache_dir

__all__ = ["MNIST_100_SIZES", "digit_pairs", "load_mnist_100"]

MNIST_100_SIZES = (120_000, 20_000)
"""(train, test) pairs of the registered ``mnist-100``."""
MNIST_100_SEED = 0
_FORMAT = "digit-pairs-v1"


def digit_pairs(digits: Split, size: int, generator: torch.Generator) -> Split:
    """``size`` images ``[size, 1, H, 2W]`` of two digits of ``digits`` side by side, labelled
    ``10 * left + right``; each of the 100 classes ``size // 100`` or one more times."""
    if size < 100:
        raise KDistillError(f"digit pairs need at least 100 examples (one per class), got {size}")
    present = torch.bincount(digits.labels, minlength=10)
    if len(present) != 10 or bool((present == 0).any()):
        raise KDistillError("digit pairs need single digits of all ten classes 0-9")
    labels = torch.randperm(size, generator=generator) % 100
    order = torch.argsort(digits.labels, stable=True)
    starts = torch.cumsum(present, 0) - present

    def draw(digit: torch.Tensor) -> torch.Tensor:
        offset = (torch.rand(size, generator=generator) * present[digit]).long()
        return order[starts[digit] + offset.clamp_max(present[digit] - 1)]

    left, right = draw(labels // 10), draw(labels % 10)
    images = torch.cat([digits.inputs[left], digits.inputs[right]], dim=3)
    return Split(images.contiguous(), labels)


def load_mnist_100(
    cache_dir: str | Path | None = None,
    mnist_wheel: str | Path | None = None,
    *,
    sizes: tuple[int, int] = MNIST_100_SIZES,
    seed: int = MNIST_100_SEED,
) -> DataSet:
    """MNIST-100 built once from real MNIST and cached as ``<cache>/datasets/mnist-100.npz``."""
    mnist = load_mnist(cache_dir=cache_dir, mnist_wheel=mnist_wheel)
    cache_file = default_cache_dir(cache_dir) / "datasets" / "mnist-100.npz"
    source = f"{_FORMAT}:mnist={mnist.fingerprint}:seed={seed}:sizes={sizes[0]},{sizes[1]}"
    cached = load_cached(cache_file, source=source, image_shape=(1, 28, 56), sizes=sizes)
    if cached is not None:
        return cached
    generator = torch.Generator().manual_seed(seed)
    train = digit_pairs(mnist.train, sizes[0], generator)
    test = digit_pairs(mnist.test, sizes[1], generator)
    dataset = DataSet(
        name="mnist-100",
        train=train,
        test=test,
        num_classes=100,
        fingerprint=compute_fingerprint(train, test),
    )
    save_cached(cache_file, dataset, source=source)
    return dataset
