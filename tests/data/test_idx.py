"""IDX reader: round trips for every dtype code, gzip detection, and every malformed input."""

import gzip
import struct

import numpy as np
import pytest

from kdistill.data.idx import read_idx, read_idx_images, read_idx_labels
from kdistill.errors import KDistillError

from .fakes import idx_bytes, write_idx


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_every_dtype(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(np.dtype(dtype).newbyteorder("="))
    path = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), array, gz=gz)
    got = read_idx(path)
    assert got.dtype == array.dtype and got.dtype.isnative
    assert got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, array)
    assert got.flags.writeable


def test_header_is_big_endian(tmp_path):
    # 300 = 0x012C: a little-endian reader would see 0x2C010000 rows.
    labels = (np.arange(300) % 10).astype(np.uint8)
    path = tmp_path / "labels"
    path.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 300) + labels.tobytes())
    got = read_idx_labels(path)
    assert got.shape == (300,) and got[123] == 3


def test_gzip_detected_by_magic_not_name(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    gz_named_plain = write_idx(tmp_path / "images.gz", array, gz=False)
    plain_named_gz = write_idx(tmp_path / "images", array, gz=True)
    np.testing.assert_array_equal(read_idx_images(gz_named_plain), array)
    np.testing.assert_array_equal(read_idx_images(plain_named_gz), array)


def _expect(path, *words):
    with pytest.raises(KDistillError) as info:
        read_idx(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word in message
    return message


def test_wrong_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00")
    _expect(path, "01020801", "not an IDX file")


def test_unknown_dtype_code(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    _expect(path, "unknown dtype code 0x07")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload(tmp_path, gz):
    data = idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8))[:-5]
    path = tmp_path / "short"
    path.write_bytes(gzip.compress(data) if gz else data)
    _expect(path, "truncated", "[2, 3, 4]", "24 payload bytes", "found 19")


def test_extra_bytes(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros((2, 3), dtype=">i4")) + b"\x00\x01")
    _expect(path, "extra bytes", "24 payload bytes", "found 26")


def test_truncated_header(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 5))
    _expect(path, "truncated inside its header")
    path.write_bytes(b"\x00\x00")
    _expect(path, "shorter than the 4-byte magic")


def test_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(600, dtype=np.uint8).reshape(6, 10, 10)))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    _expect(path, "truncated or corrupt gzip", "download it again")


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope", "does not exist")


def test_images_and_labels_need_the_right_rank(tmp_path):
    labels = write_idx(tmp_path / "labels", np.zeros(5, dtype=np.uint8))
    images = write_idx(tmp_path / "images", np.zeros((5, 2, 2), dtype=np.uint8))
    with pytest.raises(KDistillError, match=r"has 1 dimensions .* expected 3"):
        read_idx_images(labels)
    with pytest.raises(KDistillError, match=r"has 3 dimensions .* expected 1"):
        read_idx_labels(images)
