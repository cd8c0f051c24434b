"""An output folder holds one run: locked while it runs, refused to another run unless
--resume (with the same config) or --overwrite, and untouched by a run that fails to start."""

import subprocess
import sys

import pytest

from kdistill import methods
from kdistill.cli.main import main
from kdistill.errors import KDistillError
from kdistill.files import LOCK_NAME
from tests.reliability.conftest import config, epochs_logged, train_config


def test_resume_with_a_changed_config_is_refused_naming_the_keys(tmp_path, tiny):
    run = tmp_path / "run"
    methods.train(config(train_config(run, epochs=1)), dataset=tiny)
    written = (run / "config.yaml").read_text()
    changed = train_config(run, epochs=1, optimizer={"lr": 0.5}, batch_size=25)
    with pytest.raises(KDistillError) as error:
        methods.train(config(changed), resume=True, dataset=tiny)
    message = str(error.value)
    assert "train.batch_size" in message and "train.optimizer.lr" in message
    assert "\n" not in message
    assert (run / "config.yaml").read_text() == written


def test_resume_may_change_cosmetic_keys(tmp_path, tiny):
    run = tmp_path / "run"
    methods.train(config(train_config(run, epochs=1)), dataset=tiny)
    cosmetic = train_config(run, epochs=1, eval_batch_size=123, checkpoint_every_steps=5)
    methods.train(config(cosmetic), resume=True, dataset=tiny)


def test_distill_resume_with_another_temperature_and_lr_is_refused_by_the_cli(
    tmp_path, tiny_npz, capsys
):
    teacher = tmp_path / "teacher"
    data = f"npz:{tiny_npz}"
    assert main(["train", _yaml(tmp_path, train_config(teacher, data, epochs=1))]) == 0
    student = train_config(tmp_path / "student", data, epochs=1)
    student["distill"] = {
        "teachers": [{"checkpoint": str(teacher / "model.safetensors")}],
        "temperature": 4,
    }
    path = _yaml(tmp_path, student)
    assert main(["distill", path]) == 0
    capsys.readouterr()
    changed = ["--set", "distill.temperature=9", "--set", "train.optimizer.lr=0.5", "--resume"]
    assert main(["distill", path, *changed]) == 2
    err = capsys.readouterr().err.strip()
    assert "distill.temperature" in err and "train.optimizer.lr" in err
    assert len(err.splitlines()) == 1
    assert "temperature: 4" in (tmp_path / "student" / "config.yaml").read_text()


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path, tiny):
    run = tmp_path / "run"
    methods.train(config(train_config(run, epochs=1)), dataset=tiny)
    metrics = (run / "metrics.jsonl").read_text()
    with pytest.raises(KDistillError, match="holds another run.*--resume.*--overwrite"):
        methods.train(config(train_config(run, epochs=1, optimizer={"lr": 0.01})), dataset=tiny)
    assert (run / "metrics.jsonl").read_text() == metrics
    methods.train(config(train_config(run, epochs=1)), overwrite=True, dataset=tiny)
    assert epochs_logged(run) == [1]


def test_a_run_that_fails_validation_leaves_a_finished_run_as_it_was(tmp_path, tiny):
    run = tmp_path / "run"
    methods.train(config(train_config(run, epochs=1)), dataset=tiny)
    before = {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()}
    broken = train_config(run, epochs=1)
    broken["model"]["kwargs"]["num_classes"] = 3  # fewer outputs than MNIST has classes
    for flags in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(KDistillError, match="num_classes"):
            methods.train(config(broken), dataset=tiny, **flags)
    after = {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()}
    assert after == before


def test_a_folder_in_use_by_another_process_is_refused_and_freed_by_its_death(tmp_path, tiny):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom kdistill.files import folder_lock\n"
            f"with folder_lock({str(run)!r}):\n    print('held', flush=True)\n    time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(
            KDistillError, match=f"in use by another kdistill run \\(pid {holder.pid}"
        ):
            methods.train(config(train_config(run, epochs=1)), dataset=tiny)
        assert not (run / "config.yaml").exists()
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock; no stale lock remains
        holder.wait()
    assert (run / LOCK_NAME).exists()
    methods.train(config(train_config(run, epochs=1)), dataset=tiny)
    assert epochs_logged(run) == [1]


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, tiny_npz, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    raw = train_config(target, f"npz:{tiny_npz}", epochs=1)
    assert main(["train", _yaml(tmp_path, raw)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdistill: error:") and "is a file" in err and len(err.splitlines()) == 1


def test_raising_epochs_on_resume_continues_the_run_and_says_what_the_schedule_means(
    tmp_path, tiny, capsys
):
    run = tmp_path / "run"
    methods.train(config(train_config(run, epochs=1)), dataset=tiny)
    capsys.readouterr()
    result = methods.train(config(train_config(run, epochs=2)), resume=True, dataset=tiny)
    assert epochs_logged(run) == [1, 2] and len(result.history) == 2
    err = capsys.readouterr().err
    assert "resuming at epoch 2" in err
    assert "train.epochs raised from 1 to 2" in err and "schedule" in err
    with pytest.raises(KDistillError, match="different train.epochs"):
        methods.train(config(train_config(run, epochs=1)), resume=True, dataset=tiny)


def _yaml(tmp_path, raw) -> str:
    import yaml

    path = tmp_path / f"{abs(hash(str(raw)))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)
