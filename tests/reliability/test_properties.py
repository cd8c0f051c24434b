"""Property-based tests: the IDX and .npz readers and ``--set`` parsing either give the right
answer or one KDistillError, for any input (hypothesis draws them; seeded, 40 each)."""

import gzip
import io
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kdistill.config import apply_overrides, parse_config
from kdistill.data.idx import IDX_DTYPES, read_idx
from kdistill.data.loaders import load_npz
from kdistill.errors import KDistillError

QUICK = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}


def _idx_bytes(array: np.ndarray) -> bytes:
    code = CODES[array.dtype.newbyteorder("=")]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(payload: bytes, suffix: str) -> Path:
    handle = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)
    handle.write(payload)
    handle.close()
    return Path(handle.name)


@QUICK
@given(
    array=hnp.arrays(
        st.sampled_from([np.dtype(d) for d in ("u1", "i1", "i2", "i4", "f4", "f8")]),
        hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    compressed=st.booleans(),
)
def test_idx_files_read_back_exactly(array, compressed):
    payload = _idx_bytes(array)
    path = _write(gzip.compress(payload) if compressed else payload, ".idx")
    try:
        read = read_idx(path)
    finally:
        path.unlink()
    assert read.shape == array.shape
    np.testing.assert_array_equal(read, array)


@QUICK
@given(payload=st.binary(max_size=200), cut=st.integers(min_value=0, max_value=200))
def test_any_bytes_as_idx_give_an_array_or_one_kdistill_error(payload, cut):
    for data in (payload, _idx_bytes(np.arange(12, dtype="u1").reshape(3, 4))[:cut]):
        path = _write(data, ".idx")
        try:
            read_idx(path)
        except KDistillError as error:
            assert "\n" not in str(error)
        finally:
            path.unlink()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


VALID = _npz_bytes(
    {
        "x_train": np.zeros((4, 3), np.float32),
        "y_train": np.array([0, 1, 0, 1]),
        "x_test": np.zeros((2, 3), np.float32),
        "y_test": np.array([1, 0]),
    }
)


@QUICK
@given(
    payload=st.binary(max_size=300),
    cut=st.integers(min_value=0, max_value=len(VALID)),
    flip=st.integers(min_value=0, max_value=len(VALID) - 1),
)
def test_any_bytes_as_npz_give_a_data_set_or_one_kdistill_error(payload, cut, flip):
    flipped = bytearray(VALID)
    flipped[flip] ^= 0xFF
    for data in (payload, VALID[:cut], bytes(flipped), b"PK\x03\x04" + payload):
        path = _write(data, ".npz")
        try:
            load_npz(path)
        except KDistillError as error:
            assert "\n" not in str(error)
        except zipfile.BadZipFile as error:  # pragma: no cover - must not happen
            pytest.fail(f"BadZipFile escaped: {error}")
        finally:
            path.unlink()


@QUICK
@given(
    arrays=st.fixed_dictionaries(
        {
            "x_train": hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 4))),
            "y_train": hnp.arrays(np.int64, st.integers(1, 6), elements=st.integers(-2, 12)),
            "x_test": hnp.arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 4))),
            "y_test": hnp.arrays(np.int64, st.integers(1, 6), elements=st.integers(0, 9)),
        }
    )
)
def test_npz_arrays_of_any_shapes_and_labels_load_or_are_named(arrays):
    path = _write(_npz_bytes(arrays), ".npz")
    try:
        dataset = load_npz(path)
    except KDistillError as error:
        assert "\n" not in str(error)
    else:
        assert len(dataset.train) == len(arrays["y_train"])
    finally:
        path.unlink()


KEY = st.from_regex(r"[a-z_]{1,8}(\.[a-z_]{1,8}){0,2}", fullmatch=True)
SCALAR = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
)


@QUICK
@given(key=KEY, value=SCALAR)
def test_set_overrides_put_the_yaml_value_at_the_dotted_key(key, value):
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    raw = apply_overrides({}, [f"{key}={text}"])
    node = raw
    for part in key.split(".")[:-1]:
        node = node[part]
    assert node[key.split(".")[-1]] == yaml.safe_load(text)


@QUICK
@given(text=st.text(max_size=40))
def test_any_override_text_gives_a_config_or_one_kdistill_error(text):
    try:
        parse_config(apply_overrides({}, [text]))
    except KDistillError as error:
        assert "\n" not in str(error)
