"""Born-again generations and mutual learning under torchrun: two CPU processes reach the
weights one process reaches, and rank 0 alone reports and writes the summary."""

from __future__ import annotations

import json

import pytest
import torch

from kdistill.engine.checkpoint import load_state_dict
from tests.conftest import write_mnist_npz
from tests.engine.test_distributed import TOLERANCE, _finish, _kdistill


@pytest.fixture(scope="module")
def data(tmp_path_factory, mnist):
    folder = tmp_path_factory.mktemp("ddp-methods")
    return folder, write_mnist_npz(folder / "digits.npz", mnist, 600, 300)


BASE = (
    "data: {{name: 'npz:{data}'}}\n"
    "train: {{epochs: 2, batch_size: 100, progress: false, threads: 1,"
    " optimizer: {{name: sgd, lr: 0.1}}}}\n"
)


def _same_weights(one, two):
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, atol=TOLERANCE, rtol=0)


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_born_again_generations_under_two_processes_match_one(data):
    folder, npz = data
    config = folder / "born-again.yaml"
    config.write_text(
        BASE.format(data=npz)
        + "model: {name: mlp, kwargs: {hidden_sizes: [32]}}\n"
        + "born_again: {generations: 2, temperature: 2.0}\n"
    )
    for name, processes in (("one", 1), ("two", 2)):
        args = ["born-again", str(config), "--output-dir", str(folder / f"ban-{name}")]
        output = _finish(_kdistill(args, folder, processes))
        assert len(_json_lines(output)) == 1  # rank 0 reports for both processes
    for generation in (0, 1, 2):
        run = f"gen-{generation}/model.safetensors"
        _same_weights(
            load_state_dict(folder / "ban-one" / run)[0],
            load_state_dict(folder / "ban-two" / run)[0],
        )
    summary = json.loads((folder / "ban-two" / "born_again.json").read_text())
    assert len(summary["generations"]) == 3


def test_mutual_learning_under_two_processes_matches_one(data):
    folder, npz = data
    config = folder / "mutual.yaml"
    config.write_text(
        BASE.format(data=npz) + "mutual: {members: [{name: mlp, kwargs: {hidden_sizes: [32]}},"
        " {name: mlp, kwargs: {hidden_sizes: [16]}}]}\n"
    )
    for name, processes in (("one", 1), ("two", 2)):
        args = ["mutual", str(config), "--no-baselines", "--output-dir", str(folder / name)]
        output = _finish(_kdistill(args, folder, processes))
        assert len(_json_lines(output)) == 1
    for member in ("member0", "member1"):
        _same_weights(
            load_state_dict(folder / "one" / "cohort" / f"{member}.safetensors")[0],
            load_state_dict(folder / "two" / "cohort" / f"{member}.safetensors")[0],
        )
