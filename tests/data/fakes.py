"""Small hand-made files for the data tests: IDX files, Python-2 style numpy pickles, wheels."""

from __future__ import annotations

import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np

IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written field by field with struct, independent of the reader under test."""
    code = IDX_CODES[array.dtype.str[1:]]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool | None = None) -> Path:
    """Write ``array`` as IDX; gzip'd when ``gz`` (default: when the name ends in .gz)."""
    data = idx_bytes(array)
    if gz if gz is not None else path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_idx_dir(
    directory: Path,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    gz: bool = True,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(directory / f"train-images-idx3-ubyte{ext}", x_train)
    write_idx(directory / f"train-labels-idx1-ubyte{ext}", y_train)
    write_idx(directory / f"t10k-images-idx3-ubyte{ext}", x_test)
    write_idx(directory / f"t10k-labels-idx1-ubyte{ext}", y_test)
    return directory


def tiny_arrays(seed: int = 0, n_train: int = 40, n_test: int = 20, classes: int = 4, hw=(6, 5)):
    """Random uint8 images [N, *hw] and labels cycling through all ``classes``."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, *hw), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, *hw), dtype=np.uint8)
    y_train = (np.arange(n_train) % classes).astype(np.uint8)
    y_test = (np.arange(n_test) % classes).astype(np.uint8)
    return x_train, y_train, x_test, y_test


def _short_string(data: bytes) -> bytes:
    return b"U" + bytes([len(data)]) + data


def py2_array_pickle_body(array: np.ndarray) -> bytes:
    """Opcodes (no PROTO/STOP) that rebuild ``array`` the way Python 2 numpy pickled it:
    numpy.core.multiarray._reconstruct + BUILD with the raw bytes as a BINSTRING."""
    assert array.dtype.str in ("<f4", "<i8") and array.flags.c_contiguous
    out = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    out += b"K\x00\x85" + _short_string(b"b") + b"\x87R"  # _reconstruct(ndarray, (0,), 'b')
    out += b"(K\x01"  # MARK, version 1
    out += b"(" + b"".join(b"J" + struct.pack("<i", d) for d in array.shape) + b"t"
    out += b"cnumpy\ndtype\n" + _short_string(array.dtype.str[1:].encode()) + b"K\x00K\x01\x87R"
    out += b"(K\x03" + _short_string(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    raw = array.tobytes()
    out += b"\x89T" + struct.pack("<I", len(raw)) + raw  # False (C order), BINSTRING
    return out + b"tb"


def py2_mnist_pickle(pairs: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """A protocol-2 pickle of a tuple of (images, labels) pairs, like mnist.pkl."""
    body = b"\x80\x02("
    for images, labels in pairs:
        body += py2_array_pickle_body(images) + py2_array_pickle_body(labels) + b"\x86"
    return body + b"t."


def write_wheel(path: Path, member_bytes: bytes, member: str = "mnist/data/mnist.pkl.gz") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr("mnist/__init__.py", "")
        wheel.writestr(member, member_bytes)
    return path
