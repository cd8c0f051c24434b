"""Stopping a run at any step loses nothing: SIGTERM checkpoints at the next step boundary,
checkpoints inside an epoch resume to the same weights, and a write cut short leaves no
temporary file behind after the next start."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kdistill import methods
from kdistill.engine import trainer
from kdistill.engine.checkpoint import load_tensors
from kdistill.errors import Terminated
from tests.reliability.conftest import (
    assert_same_weights,
    config,
    epochs_logged,
    logged_without_timing,
    train_config,
)


def _stop_at_call(monkeypatch, calls: int, exception: BaseException | None = None) -> None:
    """Make the loop's ``stop_requested`` answer True (as after SIGTERM) at its ``calls``-th
    step, or raise ``exception`` there (a kill between two steps)."""
    count = {"n": 0}

    def stop() -> bool:
        count["n"] += 1
        if count["n"] == calls:
            if exception is not None:
                raise exception
            return True
        return False

    monkeypatch.setattr(trainer, "stop_requested", stop)


# Inside epoch 1, at its last step, inside epoch 2 (the loop also asks once after each epoch).
@pytest.mark.parametrize(("call", "step"), [(7, 7), (20, 20), (34, 33)])
def test_a_stop_request_checkpoints_that_step_and_resume_is_bit_identical(
    tmp_path, tiny, monkeypatch, call, step
):
    methods.train(config(train_config(tmp_path / "straight")), dataset=tiny)
    run = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        _stop_at_call(patch, call)
        with pytest.raises(Terminated):
            methods.train(config(train_config(run)), dataset=tiny)
    saved = json.loads((run / "checkpoint.json").read_text())
    assert saved["step"] == step
    methods.train(config(train_config(run)), resume=True, dataset=tiny)
    assert_same_weights(tmp_path / "straight" / "model.safetensors", run / "model.safetensors")
    assert logged_without_timing(run) == logged_without_timing(tmp_path / "straight")


def test_checkpoint_every_steps_resumes_mid_epoch_to_identical_weights(tmp_path, tiny, monkeypatch):
    methods.train(config(train_config(tmp_path / "straight")), dataset=tiny)
    run = tmp_path / "killed"
    raw = train_config(run, checkpoint_every_steps=6)
    with monkeypatch.context() as patch:  # killed after step 27: the checkpoint of step 24 remains
        _stop_at_call(patch, 27, RuntimeError("killed"))
        with pytest.raises(RuntimeError, match="killed"):
            methods.train(config(raw), dataset=tiny)
    saved = json.loads((run / "checkpoint.json").read_text())
    assert (saved["epoch"], saved["step"], saved["partial"]["batches"]) == (1, 24, 4)
    methods.train(config(raw), resume=True, dataset=tiny)
    assert_same_weights(tmp_path / "straight" / "model.safetensors", run / "model.safetensors")
    assert logged_without_timing(run) == logged_without_timing(tmp_path / "straight")


def test_a_kill_inside_a_checkpoint_write_leaves_the_last_checkpoint_and_no_temporary(
    tmp_path, tiny, monkeypatch
):
    run = tmp_path / "run"
    methods.train(config(train_config(run, epochs=1)), dataset=tiny)
    before = (run / "checkpoint.safetensors").read_bytes()
    # What SIGKILL inside atomic_write leaves: a half-written temporary beside the old file.
    stale = run / ".checkpoint.safetensors.k1ll3d.tmp"
    stale.write_bytes(before[: len(before) // 2])
    nested = run / "hint-stage" / ".model.safetensors.x.tmp"
    nested.parent.mkdir()
    nested.write_bytes(b"half")
    assert load_tensors(run / "checkpoint.safetensors")[1]["epoch"] == 1
    methods.train(config(train_config(run, epochs=2)), resume=True, dataset=tiny)
    assert not stale.exists() and not nested.exists()
    assert epochs_logged(run) == [1, 2]


def test_sigterm_stops_the_cli_with_143_a_resume_hint_and_a_step_checkpoint(tmp_path, tiny_npz):
    data = f"npz:{tiny_npz}"
    methods.train(config(train_config(tmp_path / "straight", data, epochs=3)))
    stopped = _yaml(tmp_path, train_config(tmp_path / "stopped", data, epochs=3))
    process = _cli("train", stopped)
    sidecar = tmp_path / "stopped" / "checkpoint.json"
    deadline = time.time() + 120
    while time.time() < deadline and not sidecar.exists():
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    assert process.stderr is not None
    err = process.stderr.read().decode()
    assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err
    resumed = _cli("train", stopped, "--resume")
    assert resumed.wait(timeout=120) == 0
    assert resumed.stderr is not None and "resuming at epoch" in resumed.stderr.read().decode()
    assert_same_weights(
        tmp_path / "straight" / "model.safetensors", tmp_path / "stopped" / "model.safetensors"
    )
    assert logged_without_timing(tmp_path / "stopped") == logged_without_timing(
        tmp_path / "straight"
    )


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kdistill", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _yaml(tmp_path, raw) -> str:
    import yaml

    path = tmp_path / f"{os.path.basename(raw['output_dir'])}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)
