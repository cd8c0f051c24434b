"""The one training loop: it learns, logs, and a SIGKILLed run resumes to identical weights."""

import json
import os
import signal
import subprocess
import sys
import time

import torch
import yaml

from kdistill.config import TrainConfig
from kdistill.data import TrainingData
from kdistill.engine import FitSettings, SupervisedObjective, fit
from kdistill.engine.checkpoint import load_tensors
from kdistill.models import create_model


def _config_file(tmp_path, data_path, output_dir, epochs):
    config = {
        "seed": 7,
        "output_dir": str(output_dir),
        "data": {"name": f"npz:{data_path}", "max_shift": 1},
        "model": {
            "name": "mlp",
            "kwargs": {"hidden_sizes": [400, 400], "hidden_dropout": 0.2, "max_norm": 2.0},
        },
        "train": {"epochs": epochs, "batch_size": 50, "optimizer": {"name": "sgd", "lr": 0.05}},
    }
    path = tmp_path / f"{output_dir.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run_cli(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "kdistill", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_sigkill_then_resume_gives_the_same_final_weights(tmp_path, small_mnist_npz):
    epochs = 4
    straight = _config_file(tmp_path, small_mnist_npz, tmp_path / "straight", epochs)
    killed = _config_file(tmp_path, small_mnist_npz, tmp_path / "killed", epochs)
    assert _run_cli("train", str(straight)).wait(timeout=300) == 0

    process = _run_cli("train", str(killed))
    sidecar = tmp_path / "killed" / "checkpoint.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if sidecar.exists() and json.loads(sidecar.read_text() or "{}").get("epoch", -1) >= 1:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "final.json").exists()
    interrupted_at = json.loads(sidecar.read_text())["epoch"]
    assert 1 <= interrupted_at < epochs

    resumed = _run_cli("train", str(killed), "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    a, _ = load_tensors(tmp_path / "straight" / "model.safetensors")
    b, _ = load_tensors(tmp_path / "killed" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, epochs + 1))


def test_fit_learns_real_digits_and_logs_every_epoch(tmp_path, mnist):
    train = mnist.train.subset(torch.arange(3000))
    test = mnist.test.subset(torch.arange(1000))
    torch.manual_seed(0)
    model = create_model("mlp", hidden_sizes=[128])
    config = TrainConfig(epochs=2, batch_size=50, progress=False)
    result = fit(
        SupervisedObjective(model),
        TrainingData(train, {"test": test}),
        FitSettings(config, tmp_path, seed=0),
    )
    errors = [record["model"]["test"]["errors"] for record in result.history]
    assert len(errors) == 2
    assert all(r["seconds"] > 0 and r["eval_seconds"] > 0 for r in result.history)
    assert errors[-1] < 150  # a 784-128-10 MLP on 3,000 digits: about 90% right after two epochs
    final = result.final["model"]["test"]
    assert sum(final["per_class_errors"]) == final["errors"]
    assert sum(map(sum, final["confusion"])) == 1000
    assert (tmp_path / "model.safetensors").exists()


def test_mixed_precision_option_runs_on_cpu(tmp_path, mnist):
    train = mnist.train.subset(torch.arange(200))
    model = create_model("mlp", hidden_sizes=[16])
    config = TrainConfig(epochs=1, batch_size=100, progress=False, mixed_precision="bf16")
    result = fit(
        SupervisedObjective(model),
        TrainingData(train, {"test": mnist.test.subset(torch.arange(100))}),
        FitSettings(config, tmp_path),
    )
    assert result.history[0]["train"]["loss"]["hard_targets"] > 0
    assert model.layers[1].weight.dtype == torch.float32  # autocast keeps fp32 master weights


def test_unavailable_device_is_a_one_line_error():
    import pytest

    from kdistill.engine import resolve_device
    from kdistill.errors import KDistillError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(KDistillError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type in {"cpu", "mps"}


def test_tensorboard_without_the_package_is_a_one_line_error(tmp_path, mnist):
    import importlib.util

    import pytest

    from kdistill.errors import KDistillError

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed here")
    config = TrainConfig(epochs=1, progress=False, tensorboard=True)
    with pytest.raises(KDistillError, match=r"pip install 'kdistill\[tensorboard\]'"):
        fit(
            SupervisedObjective(create_model("mlp", hidden_sizes=[4])),
            TrainingData(mnist.test.subset(torch.arange(100)), {}),
            FitSettings(config, tmp_path),
        )


def test_the_dry_run_before_training_leaves_batch_norm_statistics_alone(
    tmp_path, mnist, monkeypatch
):
    from kdistill.engine import trainer

    model = create_model("cnn", channels=[4])
    seen = {}
    real_build = trainer.build_optimizer

    def snapshot_then_build(parameters, config):
        seen["running_mean"] = model.features[1].running_mean.clone()
        return real_build(parameters, config)

    monkeypatch.setattr(trainer, "build_optimizer", snapshot_then_build)
    config = TrainConfig(epochs=1, batch_size=100, progress=False)
    from kdistill.losses.logits import SoftTargetLoss
    from kdistill.methods.distill import Distiller
    from kdistill.teachers import Teacher

    distiller = Distiller(model, Teacher([create_model("cnn", channels=[4])]), [SoftTargetLoss()])
    fit(
        distiller,
        TrainingData(mnist.train.subset(torch.arange(100)), {}),
        FitSettings(config, tmp_path),
    )
    torch.testing.assert_close(seen["running_mean"], torch.zeros(4))
    assert not torch.equal(model.features[1].running_mean, torch.zeros(4))  # training did move them


def test_a_diverging_run_stops_with_a_one_line_error_before_any_checkpoint(tmp_path, mnist):
    import pytest

    from kdistill.errors import KDistillError

    train = mnist.train.subset(torch.arange(1000))
    torch.manual_seed(0)
    model = create_model("mlp", hidden_sizes=[64])
    config = TrainConfig(
        epochs=1,
        batch_size=10,
        progress=False,
        optimizer={"name": "sgd", "lr": 1e12},
    )
    with pytest.raises(KDistillError, match=r"loss became .* lower train.optimizer.lr") as error:
        fit(
            SupervisedObjective(model),
            TrainingData(train, {}),
            FitSettings(config, tmp_path, seed=0),
        )
    assert "\n" not in str(error.value)
    assert not (tmp_path / "checkpoint.safetensors").exists()
    assert not (tmp_path / "model.safetensors").exists()


def test_training_split_lives_on_an_accelerator_only_when_it_fits(mnist):
    from kdistill.engine.device import RESIDENT_SHARE, resident_split

    split = mnist.train.subset(torch.arange(100))
    size = split.inputs.nbytes + split.labels.nbytes
    assert resident_split(split, torch.device("cpu")) is split
    # The meta device stands in for a GPU: no memory, same placement rule.
    meta = torch.device("meta")
    moved = resident_split(split, meta, free_bytes=int(size / RESIDENT_SHARE) + 1)
    assert moved.inputs.device == meta and moved.labels.device == meta
    assert moved.input_encoding == split.input_encoding
    assert resident_split(split, meta, free_bytes=int(size / RESIDENT_SHARE) - 1) is split


def test_channels_last_trains_the_same_cnn_and_resumes(tmp_path, mnist, monkeypatch):
    from kdistill.engine import trainer

    data = TrainingData(
        mnist.train.subset(torch.arange(300)), {"test": mnist.test.subset(torch.arange(100))}
    )
    layouts = []
    real_build = trainer.build_optimizer

    def note_layout_then_build(groups, config):
        parameters = [p for group in groups for p in group.parameters]
        conv = [p for p in parameters if p.dim() == 4][-1]  # the first has 1 input channel
        layouts.append(conv.is_contiguous(memory_format=torch.channels_last))
        return real_build(groups, config)

    monkeypatch.setattr(trainer, "build_optimizer", note_layout_then_build)
    weights = {}
    for name, channels_last, epochs in (("plain", False, 2), ("last", True, 2), ("half", True, 1)):
        torch.manual_seed(0)
        model = create_model("cnn", channels=[8, 16], hidden_size=32)
        config = TrainConfig(
            epochs=epochs, batch_size=50, progress=False, channels_last=channels_last,
            optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
            schedule={"name": "constant"},
        )  # fmt: skip
        fit(SupervisedObjective(model), data, FitSettings(config, tmp_path / name, seed=3))
        weights[name] = {k: v.clone() for k, v in model.state_dict().items()}
    assert layouts == [False, True, True]
    # Only float rounding differs between the layouts after 12 steps.
    for key, tensor in weights["plain"].items():
        torch.testing.assert_close(weights["last"][key], tensor, atol=1e-3, rtol=1e-3)
    # A run stopped after epoch 1 and resumed to 2 ends where the uninterrupted one did.
    torch.manual_seed(0)
    model = create_model("cnn", channels=[8, 16], hidden_size=32)
    config = TrainConfig(
        epochs=2, batch_size=50, progress=False, channels_last=True,
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
        schedule={"name": "constant"},
    )  # fmt: skip
    fit(
        SupervisedObjective(model),
        data,
        FitSettings(config, tmp_path / "half", seed=3),
        resume=True,
    )
    for key, tensor in weights["last"].items():
        assert torch.equal(model.state_dict()[key], tensor), key
