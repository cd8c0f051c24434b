"""torchrun: two CPU processes (gloo) train the student one process trains, with the same
global batch and seed; a 2-process run killed with SIGKILL resumes to the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from kdistill.engine.checkpoint import load_state_dict, load_tensors
from kdistill.engine.distributed import leave_process_group
from tests.conftest import write_mnist_npz

TOLERANCE = 1e-5
"""Largest weight difference allowed between 1 and 2 processes after 20 steps: the same
examples and the same averaged gradient, summed in another order (float32 rounding)."""


def _env(tmp_path: Path) -> dict[str, str]:
    root = Path(__file__).resolve().parents[2]
    return {
        **os.environ,
        "KDISTILL_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)]),
        "OMP_NUM_THREADS": "1",
    }


def _kdistill(args: list[str], tmp_path: Path, processes: int = 1) -> subprocess.Popen:
    if processes == 1:
        command = [sys.executable, "-m", "kdistill", *args]
    else:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", "-m", "kdistill", *args,
        ]  # fmt: skip
    return subprocess.Popen(
        command,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=300)
    # 6,000 characters: the failing rank's own lines come before torchrun's long summary
    assert process.returncode == 0, output[-6000:]
    return output


@pytest.fixture(scope="module")
def setup(tmp_path_factory, mnist):
    folder = tmp_path_factory.mktemp("ddp")
    data = write_mnist_npz(folder / "digits.npz", mnist, 1000, 500)
    base = (
        f"data: {{name: 'npz:{data}'}}\n"
        "train: {batch_size: 100, progress: false, threads: 1, optimizer: {name: sgd, lr: 0.1}}\n"
    )
    teacher = folder / "teacher.yaml"
    teacher.write_text(base + "model: {name: mlp, kwargs: {hidden_sizes: [64]}}\n")
    _finish(_kdistill(["train", str(teacher), "--set", "train.epochs=1",
                       "--output-dir", str(folder / "teacher")], folder))  # fmt: skip
    student = folder / "student.yaml"
    student.write_text(
        base
        + "model: {name: mlp, kwargs: {hidden_sizes: [32]}}\n"
        + f"distill: {{teachers: [{{checkpoint: '{folder / 'teacher' / 'model.safetensors'}'}}],"
        " temperature: 4}\n"
    )
    return folder, student


def _kill_everything_running(marker: str) -> None:
    """SIGKILL every process whose command line names ``marker``: torchrun starts its workers
    in sessions of their own, so killing its process group would leave them running."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in command:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_state_dict(run / "student.safetensors")[0]


def test_two_processes_train_the_student_one_process_trains(setup):
    folder, student = setup
    args = ["distill", str(student), "--set", "train.epochs=2"]
    one = _kdistill([*args, "--output-dir", str(folder / "one")], folder)
    _finish(one)
    two = _kdistill([*args, "--output-dir", str(folder / "two")], folder, processes=2)
    output = _finish(two)
    assert output.count('"test_errors"') == 1  # rank 0 reports, rank 1 stays quiet
    single, double = _weights(folder / "one"), _weights(folder / "two")
    for name, tensor in single.items():
        torch.testing.assert_close(double[name], tensor, atol=TOLERANCE, rtol=0)
    _, saved = load_tensors(folder / "two" / "checkpoint.safetensors")
    assert saved["steps_per_epoch"] == 10  # the global batch: 1,000 examples / 100


def test_a_killed_two_process_run_resumes_to_the_same_weights_with_two_or_one(setup):
    folder, student = setup
    args = ["distill", str(student), "--set", "train.epochs=30"]
    _finish(_kdistill([*args, "--output-dir", str(folder / "whole")], folder, processes=2))
    whole = _weights(folder / "whole")
    for name, processes in (("killed", 2), ("resumed-alone", 1)):
        killed = _kdistill([*args, "--output-dir", str(folder / name)], folder, processes=2)
        checkpoint = folder / name / "checkpoint.safetensors"
        deadline = time.time() + 240
        while not checkpoint.exists() and time.time() < deadline and killed.poll() is None:
            time.sleep(0.05)
        _kill_everything_running(str(folder / name))  # torchrun and both workers, mid-run
        killed.communicate()
        assert load_tensors(checkpoint)[1]["epoch"] < 30
        resume = [*args, "--output-dir", str(folder / name), "--resume"]
        _finish(_kdistill(resume, folder, processes))
        resumed = _weights(folder / name)
        for key, tensor in whole.items():
            if processes == 2:  # the same processes: bit-identical
                assert torch.equal(resumed[key], tensor), key
            else:  # one process takes over: the same data and steps, other float rounding
                torch.testing.assert_close(resumed[key], tensor, atol=TOLERANCE, rtol=0)


def test_leaving_tears_the_process_group_down(tmp_path):
    """A finished process leaves the group itself: gloo's threads must not outlive the
    interpreter (a run that finished would otherwise abort at exit and torchrun call it
    failed). Alone, leaving does nothing."""
    leave_process_group(finished=True)  # no group: nothing to do, no error
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    assert dist.is_initialized()
    leave_process_group(finished=True)
    assert not dist.is_initialized()
