"""Small real-MNIST runs for the reliability tests: one MLP epoch is ~20 steps, well under a
second on one thread."""

from pathlib import Path
from typing import Any

import pytest
import torch

from kdistill.config import RunConfig, parse_config
from kdistill.data import DataSet
from kdistill.engine.checkpoint import load_tensors
from tests.conftest import mnist_subset, write_mnist_npz


@pytest.fixture(scope="session")
def tiny(mnist) -> DataSet:
    """1,000 training and 500 test images of real MNIST."""
    return mnist_subset(mnist, 1000, 500)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory, mnist) -> Path:
    """The same subset as an ``npz:`` data set, for runs in a subprocess."""
    return write_mnist_npz(tmp_path_factory.mktemp("data") / "tiny.npz", mnist, 1000, 500)


def train_config(output_dir: Path, data: str = "mnist", **train: Any) -> dict[str, Any]:
    """A raw train config: MLP 784-64-10 with dropout, 2 epochs of 20 steps, one thread."""
    return {
        "seed": 3,
        "output_dir": str(output_dir),
        "data": {"name": data, "max_shift": 1},
        "model": {"name": "mlp", "kwargs": {"hidden_sizes": [64], "hidden_dropout": 0.2}},
        "train": {
            "epochs": 2,
            "batch_size": 50,
            "progress": False,
            "threads": 1,
            "optimizer": {"lr": 0.05},
            **train,
        },
    }


def config(raw: dict[str, Any]) -> RunConfig:
    return parse_config(raw)


def assert_same_weights(a: Path, b: Path) -> None:
    first, _ = load_tensors(a)
    second, _ = load_tensors(b)
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0, msg=name)


def epochs_logged(run_dir: Path) -> list[int]:
    import json

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def logged_without_timing(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl without the wall-clock fields (seconds, samples/s), which always differ."""
    import json

    timing = {"seconds", "samples_per_second", "eval_seconds"}
    return [
        {k: v for k, v in json.loads(line).items() if k not in timing}
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
