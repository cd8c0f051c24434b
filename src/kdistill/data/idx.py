"""Reader for the IDX format used by MNIST, Fashion-MNIST, KMNIST and friends.

Layout: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32 per
dimension, then the payload in big-endian order. Files are often gzip'd; we detect that by the
gzip magic bytes, because renamed or re-compressed downloads make file names unreliable.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from kdistill.errors import KDistillError

__all__ = ["IDX_DTYPES", "read_idx", "read_idx_images", "read_idx_labels"]

GZIP_MAGIC = b"\x1f\x8b"

# Big-endian on disk; numpy converts to native when we call astype() below.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KDistillError(f"IDX file {path} does not exist: check the path") from None
    except OSError as exc:
        raise KDistillError(f"cannot read IDX file {path}: {exc.strerror or exc}") from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        # EOFError is what a truncated download gives; BadGzipFile/zlib.error a corrupt one.
        raise KDistillError(
            f"IDX file {path} is a truncated or corrupt gzip ({type(exc).__name__}: {exc}): "
            "download it again"
        ) from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip'd or plain) into a native-endian numpy array.

    Raises KDistillError naming the file for a bad magic number, an unknown dtype code or a
    payload whose length does not match the header's dimensions.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise KDistillError(
            f"IDX file {path} is {len(data)} bytes long, shorter than the 4-byte magic number: "
            "the file is truncated, download it again"
        )
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise KDistillError(
            f"IDX file {path} starts with bytes {data[:4].hex()}, expected 0000 followed by a "
            "dtype code and a dimension count: this is not an IDX file"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise KDistillError(
            f"IDX file {path} has unknown dtype code 0x{code:02X} (known: {known}): "
            "the file is corrupt or not IDX"
        )
    if ndim == 0:
        raise KDistillError(f"IDX file {path} declares 0 dimensions, expected at least 1")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise KDistillError(
            f"IDX file {path} is truncated inside its header ({len(data)} bytes, the header "
            f"needs {header_len}): download it again"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_len
    if found != expected:
        what = "truncated" if found < expected else "followed by extra bytes"
        raise KDistillError(
            f"IDX file {path} is {what}: header says shape {list(dims)} of {dtype.name} "
            f"({expected} payload bytes) but found {found}: download it again"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    # astype copies into a writable native-endian array that no longer pins the raw buffer.
    return array.astype(dtype.newbyteorder("="))


def read_idx_images(path: str | Path) -> np.ndarray:
    """Read an IDX image file and insist on shape [N, H, W]."""
    array = read_idx(path)
    if array.ndim != 3:
        raise KDistillError(
            f"IDX image file {path} has {array.ndim} dimensions (shape {list(array.shape)}), "
            "expected 3 ([N, H, W]): is it a label file?"
        )
    return array


def read_idx_labels(path: str | Path) -> np.ndarray:
    """Read an IDX label file and insist on shape [N]."""
    array = read_idx(path)
    if array.ndim != 1:
        raise KDistillError(
            f"IDX label file {path} has {array.ndim} dimensions (shape {list(array.shape)}), "
            "expected 1 ([N]): is it an image file?"
        )
    return array
