"""From a ``data`` config section to what a run trains and evaluates on.

A validation split is carved from the training data, never from the test set; class filters
and fractions apply to the training split only, so the test set stays whole. The input
encoding (normalisation, layout) is fixed here once and shared by every split, so the
student, the teacher and evaluation all see inputs encoded the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdistill.config import DataConfig, NormalizeValues
from kdistill.data.dataset import DataSet, InputEncoding, Split
from kdistill.data.loaders import load_dataset
from kdistill.data.subsets import carve_validation, keep_classes, take_fraction
from kdistill.errors import KDistillError
from kdistill.files import cache_dir

__all__ = ["TrainingData", "input_encoding", "prepare_data"]

# Features that never vary get std 1, not a division by zero.
_MIN_STD = 1e-6


@dataclass(frozen=True)
class TrainingData:
    """The splits of one run: ``train`` (the transfer set) and the splits evaluated each epoch
    (``validation`` if carved, ``test``), all with the same input encoding."""

    train: Split
    eval_splits: dict[str, Split]
    dataset: DataSet | None = None
    """Where the splits came from (its name and class count); None for splits built in Python."""
    max_shift: int = 0
    """The paper's jitter of training images, up to this many pixels."""

    @property
    def num_classes(self) -> int:
        if self.dataset is not None:
            return self.dataset.num_classes
        labels = [self.train.labels, *(split.labels for split in self.eval_splits.values())]
        return int(max(int(tensor.max()) for tensor in labels if len(tensor))) + 1

    @property
    def encoding(self) -> InputEncoding:
        return self.train.input_encoding


def _statistics(split: Split, per: str) -> tuple[torch.Tensor, torch.Tensor]:
    values = split.input_encoding.scale(split.inputs)
    if per == "per-channel":
        if values.dim() != 4:
            raise KDistillError(
                f"data.normalize=per-channel needs images [N, C, H, W], the inputs are "
                f"{list(values.shape)}: use data.normalize=per-feature"
            )
        dims = (0, 2, 3)
        mean = values.mean(dim=dims, keepdim=True)[0]
        std = values.std(dim=dims, keepdim=True)[0]
    else:
        mean, std = values.mean(dim=0), values.std(dim=0)
    return mean, std.clamp_min(_MIN_STD)


def input_encoding(config: DataConfig, train: Split) -> InputEncoding:
    """The encoding ``config`` asks for; statistics come from ``train``."""
    example_shape = tuple(train.inputs.shape[1:])
    base = train.input_encoding
    mean = std = None
    normalize = config.normalize
    if isinstance(normalize, NormalizeValues):
        mean = torch.tensor(normalize.mean, dtype=torch.float32)
        std = torch.tensor(normalize.std, dtype=torch.float32)
        if len(example_shape) == 3 and len(normalize.mean) == example_shape[0]:
            mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        elif mean.numel() not in (1, int(torch.tensor(example_shape).prod())):
            raise KDistillError(
                f"data.normalize.mean has {mean.numel()} values but an example is "
                f"{list(example_shape)}: give one value per channel or per feature"
            )
        else:
            mean, std = mean.reshape(example_shape), std.reshape(example_shape)
        if (std <= 0).any():
            raise KDistillError("data.normalize.std has values ≤ 0: every std must be positive")
    elif normalize is not None:
        mean, std = _statistics(train, normalize)
    shape = None
    if config.input_shape is not None:
        shape = tuple(config.input_shape)
        try:
            torch.empty(example_shape).reshape(shape)
        except RuntimeError:
            raise KDistillError(
                f"data.input_shape={list(shape)} cannot hold an example of shape "
                f"{list(example_shape)}: use [-1] to flatten, or a shape with the same size"
            ) from None
    return InputEncoding(divisor=base.divisor, mean=mean, std=std, shape=shape)


def prepare_data(config: DataConfig, seed: int, dataset: DataSet | None = None) -> TrainingData:
    """Load the data set (unless given) and derive the splits ``config`` asks for.

    Normalisation statistics come from the training split after the validation split is
    carved out and before class filters and fractions, so a teacher trained on all classes
    and a student on a filtered transfer set of the same data share one encoding.
    """
    dataset = dataset or load_dataset(config.name, cache_dir=cache_dir(), text_config=config.text)
    train = dataset.train
    eval_splits: dict[str, Split] = {}
    if config.validation_size:
        train, validation = carve_validation(train, config.validation_size, seed)
        eval_splits["validation"] = validation
    encoding = input_encoding(config, train)
    if config.keep_classes is not None:
        unknown = [c for c in config.keep_classes if not 0 <= c < dataset.num_classes]
        if unknown:
            raise KDistillError(
                f"data.keep_classes has {unknown}, but {dataset.name} has classes "
                f"0..{dataset.num_classes - 1}"
            )
        train = keep_classes(train, config.keep_classes)
    if config.train_fraction < 1:
        train = take_fraction(train, config.train_fraction, seed)
    eval_splits["test"] = dataset.test
    return TrainingData(
        train.with_encoding(encoding),
        {name: split.with_encoding(encoding) for name, split in eval_splits.items()},
        dataset=dataset,
        max_shift=config.max_shift,
    )
