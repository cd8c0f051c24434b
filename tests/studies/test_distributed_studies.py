"""The reproductions under torchrun: their units (a stage, the specialists trained from its
model) reach in two CPU processes the weights one process reaches, rank 0 alone prints and
writes the report, and ``--workers`` is refused where torchrun already split the work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from kdistill.engine.checkpoint import load_state_dict
from tests.conftest import write_mnist_npz
from tests.engine.test_distributed import TOLERANCE, _env

SCRIPT = Path(__file__).with_name("distributed_units.py")


def _run(npz: Path, out: Path, processes: int, tmp_path: Path) -> str:
    launcher = (
        [sys.executable]
        if processes == 1
        else [sys.executable, "-m", "torch.distributed.run", "--standalone",
              f"--nproc_per_node={processes}"]
    )  # fmt: skip
    done = subprocess.run(
        [*launcher, str(SCRIPT), str(npz), str(out)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    return done.stdout


def _same(one: Path, two: Path) -> None:
    first, second = load_state_dict(one)[0], load_state_dict(two)[0]
    for name, tensor in first.items():
        torch.testing.assert_close(second[name], tensor, atol=TOLERANCE, rtol=0)


def test_stages_and_specialists_under_two_processes_match_one(tmp_path, mnist):
    npz = write_mnist_npz(tmp_path / "digits.npz", mnist, 600, 200)
    alone = _run(npz, tmp_path / "one", 1, tmp_path)
    output = _run(npz, tmp_path / "two", 2, tmp_path)
    results = [
        json.loads((tmp_path / "two" / f"result-rank{rank}.json").read_text()) for rank in (0, 1)
    ]
    assert sorted(result["rank"] for result in results) == [0, 1]
    assert all(result["report"] for result in results)  # rank 1 waited for rank 0's report
    assert all("drop --workers" in result["refused"] for result in results)
    assert output.count("[generalist]") == 1 and alone.count("[generalist]") == 1
    assert (tmp_path / "two" / "report" / "writers.txt").read_text() == "0\n"
    generalist = next((tmp_path / "one").glob("generalist-*")).name
    _same(tmp_path / "one" / generalist / "model.safetensors",
          tmp_path / "two" / generalist / "model.safetensors")  # fmt: skip
    for index in (0, 1):
        _same(tmp_path / "one" / f"specialist-{index}" / "specialist.safetensors",
              tmp_path / "two" / f"specialist-{index}" / "specialist.safetensors")  # fmt: skip
    one = json.loads((tmp_path / "one" / "report" / "README.md").read_text())
    two = json.loads((tmp_path / "two" / "report" / "README.md").read_text())
    for mine, theirs in zip(one["specialists"], two["specialists"], strict=True):
        assert mine["classes"] == theirs["classes"]
        assert mine["dustbin_shift"] == theirs["dustbin_shift"]
        assert abs(mine["test"]["accuracy"] - theirs["test"]["accuracy"]) <= 1 / 200
