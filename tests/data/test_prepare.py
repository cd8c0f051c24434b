"""From a data config to the run's splits: normalisation statistics from the training split,
input layout, and the encoding every split shares; checked against hand computations."""

import numpy as np
import pytest
import torch

from kdistill.config import DataConfig, NormalizeValues
from kdistill.data import DataSet, InputEncoding, Split, prepare_data
from kdistill.errors import KDistillError


def _tabular() -> DataSet:
    x_train = torch.tensor([[1.0, -2.0, 5.0], [3.0, -4.0, 5.0], [5.0, -6.0, 5.0]])
    x_test = torch.tensor([[3.0, -4.0, 6.0]])
    labels = torch.tensor([0, 1, 0])
    return DataSet(
        "tab", Split(x_train, labels), Split(x_test, torch.tensor([1])), 2, fingerprint="t"
    )


def test_per_feature_normalisation_uses_training_statistics_only():
    data = prepare_data(DataConfig(name="tab", normalize="per-feature"), 0, _tabular())
    # Means 3, -4, 5; sample stds 2, 2, 0 (a constant feature keeps std 1e-6: no NaN).
    encoded = data.eval_splits["test"].encoded()
    assert torch.allclose(encoded[0, :2], torch.tensor([0.0, 0.0]))
    assert torch.isfinite(encoded).all() and encoded[0, 2] > 1e5  # 1 / 1e-6
    assert torch.allclose(data.train.encoded()[:, 0], torch.tensor([-1.0, 0.0, 1.0]))


def test_images_scale_then_normalise_per_channel_and_flatten(mnist):
    config = DataConfig(normalize="per-channel", input_shape=[-1], validation_size=1000)
    data = prepare_data(config, 0, mnist)
    pixels = data.train.inputs.float() / 255
    mean, std = pixels.mean(), pixels.std()
    first = data.train.encoded(0, 2)
    assert first.shape == (2, 784)
    torch.testing.assert_close(first, ((pixels[:2] - mean) / std).reshape(2, 784))
    assert data.eval_splits["validation"].input_encoding == data.encoding
    assert data.eval_splits["test"].input_encoding == data.encoding


def test_given_values_and_bad_shapes(mnist):
    config = DataConfig(normalize=NormalizeValues(mean=[0.1307], std=[0.3081]))
    data = prepare_data(config, 0, mnist)
    expected = (mnist.test.inputs[:1].float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(data.eval_splits["test"].encoded(0, 1), expected)
    with pytest.raises(KDistillError, match=r"input_shape=\[5, -1\] cannot hold"):
        prepare_data(DataConfig(input_shape=[5, -1]), 0, mnist)
    with pytest.raises(KDistillError, match="mean has 3 values"):
        prepare_data(DataConfig(normalize={"mean": [0, 0, 0], "std": [1, 1, 1]}), 0, mnist)
    with pytest.raises(KDistillError, match="per-channel needs images"):
        prepare_data(DataConfig(name="tab", normalize="per-channel"), 0, _tabular())


def test_the_encoding_round_trips_through_its_description():
    encoding = InputEncoding(255.0, torch.ones(1, 1, 1) * 0.5, torch.ones(1, 1, 1) * 2, (-1,))
    again = InputEncoding.from_description(encoding.describe())
    assert again == encoding and again.digest() == encoding.digest()
    stored = torch.from_numpy(np.arange(8, dtype=np.uint8).reshape(2, 1, 2, 2))
    torch.testing.assert_close(again.encode(stored), encoding.encode(stored))
    assert again.encode(stored).shape == (2, 4)
