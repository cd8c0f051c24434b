"""load_dataset: spec parsing, IDX directories, npz files, validation and the converted cache."""

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import kdistill.data.loaders as loaders
from kdistill.data import DataSet, load_dataset
from kdistill.errors import KDistillError

from .fakes import tiny_arrays, write_idx, write_idx_dir


def _one_line_error(call, *words):
    with pytest.raises(KDistillError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


# ---------------------------------------------------------------- IDX directories


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dir_loads_real_values(tmp_path, gz):
    x_train, y_train, x_test, y_test = tiny_arrays()
    directory = write_idx_dir(tmp_path / "digits", x_train, y_train, x_test, y_test, gz=gz)
    ds = load_dataset(f"idx:{directory}")
    assert isinstance(ds, DataSet)
    assert ds.name == "digits" and ds.num_classes == 4 and ds.validation is None
    assert ds.train.inputs.dtype == torch.uint8 and ds.train.inputs.shape == (40, 1, 6, 5)
    assert ds.train.labels.dtype == torch.int64 and ds.test.labels.shape == (20,)
    np.testing.assert_array_equal(ds.train.inputs[:, 0].numpy(), x_train)
    np.testing.assert_array_equal(ds.test.labels.numpy(), y_test)
    assert len(ds.fingerprint) == 64 and int(ds.fingerprint, 16) >= 0


def test_fingerprint_is_stable_and_sensitive(tmp_path):
    x_train, y_train, x_test, y_test = tiny_arrays()
    a = load_dataset(f"idx:{write_idx_dir(tmp_path / 'a', x_train, y_train, x_test, y_test)}")
    b = load_dataset(
        f"idx:{write_idx_dir(tmp_path / 'b', x_train, y_train, x_test, y_test, gz=False)}"
    )
    assert a.fingerprint == b.fingerprint
    x_test[0, 0, 0] ^= 1
    c = load_dataset(f"idx:{write_idx_dir(tmp_path / 'c', x_train, y_train, x_test, y_test)}")
    assert c.fingerprint != a.fingerprint


def test_idx_dir_accepts_dotted_names(tmp_path):
    x_train, y_train, x_test, y_test = tiny_arrays()
    write_idx(tmp_path / "train-images.idx3-ubyte", x_train)
    write_idx(tmp_path / "train-labels.idx1-ubyte", y_train)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", x_test)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", y_test)
    assert len(load_dataset(f"idx:{tmp_path}").train) == 40


def test_idx_dir_missing_file_and_missing_dir(tmp_path):
    directory = write_idx_dir(tmp_path / "d", *tiny_arrays())
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    _one_line_error(
        lambda: load_dataset(f"idx:{directory}"), "t10k-labels-idx1-ubyte", str(directory)
    )
    _one_line_error(lambda: load_dataset(f"idx:{tmp_path / 'nope'}"), "does not exist")


def test_idx_dir_length_mismatch_names_both_files(tmp_path):
    x_train, y_train, x_test, y_test = tiny_arrays()
    directory = write_idx_dir(tmp_path / "d", x_train, y_train[:-1], x_test, y_test)
    _one_line_error(
        lambda: load_dataset(f"idx:{directory}"),
        "40 images",
        "39 labels",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    )


def test_idx_dir_labels_file_swapped_for_images(tmp_path):
    x_train, y_train, x_test, y_test = tiny_arrays()
    directory = write_idx_dir(tmp_path / "d", x_train, y_train, x_test, y_test)
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", x_test)
    _one_line_error(lambda: load_dataset(f"idx:{directory}"), "expected 1 ([N])")


# ---------------------------------------------------------------- npz files


def _npz(tmp_path, name="set.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _arrays(**overrides):
    x_train, y_train, x_test, y_test = tiny_arrays()
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    arrays.update(overrides)
    return arrays


def test_npz_uint8_nhw(tmp_path):
    arrays = _arrays()
    ds = load_dataset(f"npz:{_npz(tmp_path, **arrays)}")
    assert ds.name == "set" and ds.num_classes == 4
    assert ds.train.inputs.shape == (40, 1, 6, 5)
    np.testing.assert_array_equal(ds.train.inputs[:, 0].numpy(), arrays["x_train"])


def test_npz_nchw_and_float_images(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (8, 3, 4, 4), dtype=np.uint8)
    y = np.arange(8) % 3
    ds = load_dataset(f"npz:{_npz(tmp_path, x_train=x, y_train=y, x_test=x, y_test=y)}")
    assert ds.train.inputs.shape == (8, 3, 4, 4) and ds.train.inputs.dtype == torch.uint8
    np.testing.assert_array_equal(ds.test.inputs.numpy(), x)
    # Float images keep their precision: not squeezed into uint8.
    floats = x.astype(np.float32) / 255 + 1e-4
    ds = load_dataset(f"npz:{_npz(tmp_path, x_train=floats, y_train=y, x_test=floats, y_test=y)}")
    assert ds.train.inputs.dtype == torch.float32
    np.testing.assert_array_equal(ds.train.inputs.numpy(), floats)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (dict(y_train=np.arange(39) % 4), ["x_train has 40 examples", "y_train has 39 labels"]),
        (dict(y_test=np.r_[-1, np.arange(19)]), ["y_test", "negative label -1"]),
        (dict(y_train=np.full(40, 70_000)), ["y_train", "label 70000", "largest allowed"]),
        (dict(y_train=np.arange(40) * 0.5), ["y_train", "dtype float64", "integer class ids"]),
        (dict(y_test=np.eye(4, dtype=np.int64)[np.arange(20) % 4]), ["y_test", "one-hot"]),
        (
            dict(x_train=np.zeros((0, 6, 5), np.uint8), y_train=np.zeros(0, int)),
            ["x_train", "empty"],
        ),
        (dict(x_test=np.full((20, 6, 5), 2.0)), ["x_train is uint8", "x_test is float", "same"]),
        (dict(x_test=np.full((20, 6, 5), 300)), ["x_test", "0..255"]),
        (dict(x_train=np.zeros((40, 28, 28, 3), np.uint8)), ["x_train", "channels-last"]),
        (dict(x_train=np.zeros((40, 30), np.uint8)), ["x_train", "[N, H, W]"]),
        (
            dict(x_test=np.zeros((20, 7, 5), np.uint8)),
            ["[1, 6, 5]", "[1, 7, 5]", "same per-example shape"],
        ),
    ],
)
def test_npz_bad_inputs(tmp_path, overrides, words):
    path = _npz(tmp_path, **_arrays(**overrides))
    message = _one_line_error(lambda: load_dataset(f"npz:{path}"), *words)
    assert str(path) in message


def test_npz_missing_keys_and_unreadable_files(tmp_path):
    path = _npz(tmp_path, x_train=np.zeros((2, 2, 2), np.uint8), y_train=np.zeros(2, int))
    _one_line_error(lambda: load_dataset(f"npz:{path}"), "lacks x_test, y_test", "x_train, y_train")
    objects = _npz(tmp_path, "obj.npz", **_arrays(y_test=np.array([None] * 20, dtype=object)))
    _one_line_error(lambda: load_dataset(f"npz:{objects}"), "without pickle")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    _one_line_error(lambda: load_dataset(f"npz:{junk}"), str(junk))
    _one_line_error(lambda: load_dataset(f"npz:{tmp_path / 'absent.npz'}"), "does not exist")


def test_one_based_labels_warn(tmp_path):
    arrays = _arrays()
    arrays["y_train"] = arrays["y_train"] + 1
    arrays["y_test"] = arrays["y_test"] + 1
    with pytest.warns(UserWarning, match="classes 0 never occur"):
        ds = load_dataset(f"npz:{_npz(tmp_path, **arrays)}")
    assert ds.num_classes == 5


# ---------------------------------------------------------------- specs and class checks


def test_unknown_spec_lists_valid_forms(tmp_path):
    message = _one_line_error(lambda: load_dataset("cifar10"), "'cifar10'")
    for form in ("'mnist'", "'fashion-mnist'", "idx:DIR", "npz:FILE.npz"):
        assert form in message
    path = _npz(tmp_path, **_arrays())
    _one_line_error(lambda: load_dataset(str(path)), f"did you mean 'npz:{path}'")
    _one_line_error(lambda: load_dataset("idx:"), "no path after 'idx:'")


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    _one_line_error(
        lambda: loaders.load_fashion_mnist(tmp_path, directory=tmp_path / "absent"),
        "apt-get install dataset-fashion-mnist",
        "idx:DIR",
    )


def test_cache_hit_corruption_and_source_change(tmp_path, monkeypatch):
    source = write_idx_dir(tmp_path / "src", *tiny_arrays(classes=10, n_train=50, hw=(28, 28)))
    cache = tmp_path / "cache"
    first = loaders.load_fashion_mnist(cache, directory=source)
    cache_file = cache / "datasets" / "fashion-mnist.npz"
    assert cache_file.is_file() and first.name == "fashion-mnist" and first.num_classes == 10
    assert not list(cache_file.parent.glob("*.tmp"))  # atomic write left no temp file

    real_read = loaders._read_idx_arrays
    monkeypatch.setattr(loaders, "_read_idx_arrays", lambda files: pytest.fail("cache missed"))
    second = loaders.load_fashion_mnist(cache, directory=source)
    assert second.fingerprint == first.fingerprint
    assert torch.equal(second.train.inputs, first.train.inputs)
    assert torch.equal(second.test.labels, first.test.labels)
    monkeypatch.setattr(loaders, "_read_idx_arrays", real_read)

    data = bytearray(cache_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # bit rot inside the pixel arrays
    cache_file.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt"):
        rebuilt = loaders.load_fashion_mnist(cache, directory=source)
    assert rebuilt.fingerprint == first.fingerprint

    # A replaced source file is noticed through its size/mtime, without a warning.
    x_train, y_train, x_test, y_test = tiny_arrays(seed=9, classes=10, n_train=50, hw=(28, 28))
    write_idx_dir(source, x_train, y_train, x_test, y_test)
    stamp = time.time_ns() + 10**9
    for path in source.iterdir():
        os.utime(path, ns=(stamp, stamp))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        changed = loaders.load_fashion_mnist(cache, directory=source)
    assert changed.fingerprint != first.fingerprint


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not FASHION.is_dir(), reason="needs Debian package dataset-fashion-mnist (apt-get install)"
)
def test_real_fashion_mnist(tmp_path):
    ds = load_dataset("fashion-mnist", cache_dir=tmp_path)
    assert ds.name == "fashion-mnist" and ds.num_classes == 10
    assert ds.train.inputs.shape == (60_000, 1, 28, 28) and ds.test.inputs.shape == (
        10_000,
        1,
        28,
        28,
    )
    assert ds.train.class_counts().tolist() == [6000] * 10
    assert ds.test.class_counts().tolist() == [1000] * 10
    assert int(ds.train.inputs.min()) == 0 and int(ds.train.inputs.max()) == 255
    assert (tmp_path / "datasets" / "fashion-mnist.npz").is_file()
    again = load_dataset("fashion-mnist", cache_dir=tmp_path)
    assert again.fingerprint == ds.fingerprint
