"""A full disk stops a run with one line and the last good checkpoint intact; two processes
on one output folder or one empty cache never corrupt each other."""

import errno
import json
import multiprocessing
import os

import pytest
import torch

from kdistill import files, methods
from kdistill.errors import KDistillError
from kdistill.models import create_model
from kdistill.teachers import Teacher, teacher_logits_for_split
from tests.reliability.conftest import (
    assert_same_weights,
    config,
    logged_without_timing,
    train_config,
)


def _disk_full_at(monkeypatch, call: int, name: str = "") -> None:
    """Flushing a file whose temporary name starts with ``.<name>`` fails with ENOSPC (as on
    a full disk) from the ``call``-th such file on."""
    count = {"n": 0}
    real = files.os.fsync

    def fsync(descriptor: int) -> None:
        target = os.path.basename(os.readlink(f"/proc/self/fd/{descriptor}"))
        if target.startswith(f".{name}") and target.endswith(".tmp"):
            count["n"] += 1
            if count["n"] >= call:
                raise OSError(errno.ENOSPC, "No space left on device")
        real(descriptor)

    monkeypatch.setattr(files.os, "fsync", fsync)


def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_last_checkpoint_survives(
    tmp_path, tiny, monkeypatch
):
    methods.train(config(train_config(tmp_path / "straight")), dataset=tiny)
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        _disk_full_at(patch, 2, "checkpoint.safetensors")  # epoch 2's checkpoint
        with pytest.raises(KDistillError) as error:
            methods.train(config(train_config(run)), dataset=tiny)
    message = str(error.value)
    assert "No space left" in message and "intact" in message and "\n" not in message
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == 1
    assert not list(run.glob(".*.tmp"))
    methods.train(config(train_config(run)), resume=True, dataset=tiny)
    assert_same_weights(tmp_path / "straight" / "model.safetensors", run / "model.safetensors")
    assert logged_without_timing(run) == logged_without_timing(tmp_path / "straight")


def test_a_full_disk_during_a_cache_write_is_one_line(tmp_path, tiny, monkeypatch):
    torch.manual_seed(0)
    teacher = Teacher([create_model("mlp", hidden_sizes=[16])])
    _disk_full_at(monkeypatch, 1)
    with pytest.raises(KDistillError, match="No space left"):
        teacher_logits_for_split(teacher, tiny.train, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def _cache_worker(cache, split, queue) -> None:
    torch.manual_seed(0)
    teacher = Teacher([create_model("mlp", hidden_sizes=[16])])
    queue.put(teacher_logits_for_split(teacher, split, cache).sum().item())


def test_two_processes_filling_one_empty_cache_agree_and_leave_one_entry(tmp_path, tiny):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [
        context.Process(target=_cache_worker, args=(tmp_path, tiny.train, queue)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    first, second = queue.get(), queue.get()
    assert first == second
    assert len(list((tmp_path / "teacher-logits").glob("*.safetensors"))) == 1
    assert not list(tmp_path.rglob("*.tmp"))


def _run_worker(raw, dataset, queue) -> None:
    try:
        methods.train(config(raw), dataset=dataset)
        queue.put("trained")
    except KDistillError as error:
        queue.put(f"refused: {error}")


def test_two_runs_started_together_on_one_folder_one_trains_one_is_refused(tmp_path, tiny):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    raw = train_config(tmp_path / "run", epochs=1)
    workers = [context.Process(target=_run_worker, args=(raw, tiny, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    outcomes = sorted(queue.get() for _ in workers)
    assert outcomes[1] == "trained", outcomes
    assert outcomes[0].startswith("refused:")
    assert "in use by another kdistill run" in outcomes[0] or "holds another run" in outcomes[0]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]
