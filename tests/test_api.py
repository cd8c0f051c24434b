"""The Python API: your own nn.Modules and tensors, on the same engine as the CLI; and the
tabular / flat-input path from both the CLI and Python, on features made from real MNIST."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import kdistill
from kdistill.cli.main import main
from kdistill.engine import load_model
from kdistill.errors import KDistillError
from tests.user_models import FlatMLP

ROOT = Path(__file__).resolve().parents[1]


def _tabular(split, count: int) -> tuple[np.ndarray, np.ndarray]:
    """49 real-valued features per digit: 4x4 block means of the image, centred (some < 0)."""
    images = split.inputs[:count].float().div(255)
    features = F.avg_pool2d(images, 4).flatten(1) - 0.3
    return features.numpy().astype(np.float32), split.labels[:count].numpy()


@pytest.fixture(scope="module")
def tabular(mnist, tmp_path_factory):
    x_train, y_train = _tabular(mnist.train, 3000)
    x_test, y_test = _tabular(mnist.test, 1000)
    path = tmp_path_factory.mktemp("tabular") / "digits49.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path, (x_train, y_train), (x_test, y_test)


def _yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_tabular_npz_trains_and_distils_from_the_cli_with_a_user_model(tabular, tmp_path, capsys):
    npz, _, _ = tabular
    common = (
        f"seed: 0\ndata: {{name: 'npz:{npz}', normalize: per-feature}}\n"
        "train: {epochs: 3, batch_size: 50, progress: false, threads: 1,"
        " optimizer: {name: sgd, lr: 0.05}}\n"
    )
    teacher_cfg = _yaml(
        tmp_path / "t.yaml",
        common
        + "model: {name: 'tests.user_models:flat_mlp', kwargs: {in_features: 49, hidden: 256}}\n",
    )
    assert main(["train", str(teacher_cfg), "--output-dir", str(tmp_path / "t")]) == 0
    teacher_errors = json.loads(capsys.readouterr().out)["test_errors"]["model"]["test"]
    assert teacher_errors < 150  # of 1,000 test digits, from 49 block means and 3,000 examples
    student_cfg = _yaml(
        tmp_path / "s.yaml",
        common
        + "model: {name: 'tests.user_models:flat_mlp', kwargs: {in_features: 49, hidden: 8}}\n"
        + f"distill: {{teachers: [{{checkpoint: '{tmp_path / 't' / 'model.safetensors'}'}}],"
        " temperature: 4}\n",
    )
    assert main(["distill", str(student_cfg), "--output-dir", str(tmp_path / "s")]) == 0
    student_errors = json.loads(capsys.readouterr().out)["test_errors"]["student"]["test"]
    assert student_errors < 250
    # The saved student carries its recipe and its normalisation: evaluate reproduces the run.
    assert (
        main(["evaluate", str(tmp_path / "s" / "student.safetensors"), "--data", f"npz:{npz}"]) == 0
    )
    assert f": {student_errors} errors / 1000" in capsys.readouterr().out
    # A teacher trained without normalisation would see wrong inputs: refused by name.
    unnormalised = student_cfg.read_text().replace(", normalize: per-feature", "")
    with pytest.raises(KDistillError, match="teacher .* normalised.*set data.normalize"):
        from kdistill.config import load_config
        from kdistill.methods import run

        run(load_config(_yaml(tmp_path / "u.yaml", unnormalised)))


def test_a_flat_input_model_on_images_names_the_shape_and_the_key(mnist, tmp_path, capsys):
    config = _yaml(
        tmp_path / "flat.yaml",
        "data: {name: mnist}\nmodel: {name: 'tests.user_models:flat_mlp'}\n"
        "train: {epochs: 1, progress: false}\n",
    )
    assert main(["train", str(config), "--output-dir", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error
    assert "FlatMLP" in error and "[1, 1, 28, 28]" in error and "data.input_shape=[-1]" in error


def test_python_api_distils_user_modules_from_tensors_and_loaders(tabular, tmp_path):
    _, (x_train, y_train), (x_test, y_test) = tabular
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6  # normalised as a user would
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    torch.manual_seed(0)
    teacher = FlatMLP(49, 256)
    trained = kdistill.train(
        teacher, (x_train, y_train), (x_test, y_test), epochs=3, lr=0.05, output_dir=tmp_path / "t"
    )
    assert trained.model is teacher and trained.errors() < 150
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)), batch_size=256
    )
    results = {}
    for name, teachers in (("hard", None), ("soft", teacher)):
        torch.manual_seed(1)
        student = FlatMLP(49, 8)
        if teachers is None:
            result = kdistill.train(
                student, loader, (x_test, y_test), epochs=3, lr=0.05, output_dir=tmp_path / name
            )
        else:
            result = kdistill.distill(
                [teachers], student, loader, (x_test, y_test),
                temperature=4, epochs=3, lr=0.05, output_dir=tmp_path / name,
                student_kwargs={"in_features": 49, "hidden": 8},
            )  # fmt: skip
        results[name] = result.errors()
    # Same student, seed, batches and epochs: the distilled one is no worse than hard labels.
    assert results["soft"] <= results["hard"] + 10, results
    # Saved with its class path and kwargs: loads and predicts like the trained object.
    loaded, metadata = load_model(tmp_path / "soft" / "student.safetensors")
    assert isinstance(loaded, FlatMLP) and metadata["task"] == "classification"
    x = torch.from_numpy(x_test[:50])
    torch.testing.assert_close(loaded(x), student(x))


def test_python_api_resumes_and_rejects_bad_data_in_one_line(tabular, tmp_path):
    _, (x_train, y_train), _ = tabular
    data = (x_train[:500], y_train[:500])
    torch.manual_seed(0)
    first = kdistill.train(FlatMLP(49, 16), data, epochs=2, output_dir=tmp_path / "r")
    again = kdistill.train(FlatMLP(49, 16), data, epochs=2, output_dir=tmp_path / "r", resume=True)
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key  # read back, not retrained
    with pytest.raises(KDistillError, match="holds another run .* pass --resume"):
        kdistill.train(FlatMLP(49, 16), data, epochs=2, output_dir=tmp_path / "r")
    replaced = kdistill.train(
        FlatMLP(49, 16), data, epochs=1, output_dir=tmp_path / "r", overwrite=True
    )
    assert len(replaced.history) == 1
    with pytest.raises(KDistillError, match="500 inputs but 499 labels"):
        kdistill.train(FlatMLP(49, 16), (x_train[:500], y_train[:499]), output_dir=tmp_path / "x")
    with pytest.raises(KDistillError, match="expected \\(input, label\\) pairs"):
        kdistill.as_split(DataLoader(TensorDataset(torch.zeros(4, 3)), batch_size=2))


def test_readme_python_examples_run(mnist, tmp_path, monkeypatch):
    """Every ```python block of the README runs as written (in a scratch folder)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["readme"])
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})


def test_python_api_trains_and_distils_a_segmenter_per_pixel(tmp_path):
    from kdistill.data import load_dataset
    from kdistill.models import create_model

    canvases = load_dataset("canvases-seg")
    train, test = canvases.train.subset(torch.arange(60)), canvases.test.subset(torch.arange(20))
    torch.manual_seed(0)
    small = {"channels": [2, 4, 8, 8], "decoder_channels": 4}
    teacher = kdistill.train(
        create_model("segnet", **small), train, test, epochs=1, batch_size=20, lr=0.01,
        optimizer="adamw", output_dir=tmp_path / "teacher", task="segmentation",
    ).model  # fmt: skip
    trained = kdistill.distill(
        teacher, create_model("segnet", **small), train, test, epochs=1, batch_size=20,
        lr=0.01, optimizer="adamw", soft_target_weight=0, hard_target_weight=1,
        terms=[{"kind": "pixel_kl", "weight": 10},
               {"kind": "pairwise", "student": "decode4", "teacher": "decode4"}],
        output_dir=tmp_path / "student", task="segmentation",
    )  # fmt: skip
    test_metrics = trained.final["student"]["test"]
    assert 0 <= test_metrics["miou"] <= 1 and len(test_metrics["per_class_iou"]) == 21
    losses = trained.history[0]["train"]["loss"]
    assert {"hard_targets", "pixel_kl", "pairwise"} <= set(losses) and losses["pixel_kl"] > 0
    with pytest.raises(KDistillError, match="unknown task"):
        kdistill.train(create_model("segnet", **small), train, task="segmentaton",
                       output_dir=tmp_path / "typo")  # fmt: skip
