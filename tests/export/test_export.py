"""Ship the student: ONNX (run by onnxruntime) and TorchScript files predict what the PyTorch
model predicts on the whole MNIST test set, with the run's input encoding baked in; a user
model that cannot be exported gets a one-line reason; the deployment table is measured."""

import json
from pathlib import Path

import pytest
import torch

from kdistill.cli.main import main
from kdistill.data import InputEncoding
from kdistill.engine import load_model
from kdistill.errors import KDistillError
from kdistill.export import Deployable, export_model, onnx_session, predict_onnx
from kdistill.tasks import predict_logits

pytest.importorskip("onnxruntime", reason="the export extra: pip install 'kdistill[export]'")


def _train(tmp_path: Path, name: str, model: str, extra: str = "") -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        "data: {name: mnist, train_fraction: 0.05" + extra + "}\n"
        f"model: {model}\n"
        "train: {epochs: 1, progress: false, threads: 1}\n"
    )
    assert main(["train", str(config), "--output-dir", str(tmp_path / name)]) == 0
    return tmp_path / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist):
    folder = tmp_path_factory.mktemp("export")
    return {
        "mlp": _train(folder, "mlp", "{name: mlp, kwargs: {hidden_sizes: [64]}}"),
        "small": _train(folder, "small", "{name: mlp, kwargs: {hidden_sizes: [16]}}"),
        # A user's flat MLP on normalised, flattened images: the encoding must ride along.
        "flat": _train(
            folder,
            "flat",
            "{name: 'tests.user_models:flat_mlp', kwargs: {hidden: 32}}",
            ", normalize: per-channel, input_shape: [-1]",
        ),
    }


@pytest.mark.parametrize("kind", ["mlp", "flat"])
def test_onnx_predicts_what_pytorch_predicts_on_the_whole_test_set(runs, kind, mnist, capsys):
    run = runs[kind]
    assert main(["export", str(run), "--format", "onnx"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["opset"] == 18 and line["same_prediction"] == 10_000 == line["examples"]
    # Independently of the CLI's own check: onnxruntime on stored pixels vs the PyTorch model
    # on the inputs encoded as in training.
    model, metadata = load_model(run / "model.safetensors")
    encoding = InputEncoding.from_description(metadata["input_encoding"])
    expected = predict_logits(model, mnist.test.with_encoding(encoding))
    got = predict_onnx(onnx_session(run / "model.onnx"), mnist.test.inputs)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_torchscript_round_trips(runs, capsys):
    assert main(["export", str(runs["flat"]), "--format", "torchscript"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["same_prediction"] == 10_000 and line["max_abs_logit_difference"] < 1e-4
    loaded = torch.jit.load(str(runs["flat"] / "model.pt"))
    assert loaded(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_a_model_onnx_cannot_express_is_a_one_line_error(tmp_path):
    from tests.user_models import NoOnnx

    with pytest.raises(KDistillError) as error:
        export_model(
            Deployable(NoOnnx(), InputEncoding(255.0)), torch.rand(2, 1, 28, 28), tmp_path / "x"
        )
    message = str(error.value)
    assert "\n" not in message and "NoOnnx" in message and "traceable" in message
    assert not (tmp_path / "x").exists()


def test_bench_deploy_measures_teacher_ensemble_and_student(runs, tmp_path, capsys):
    argv = ["bench", "deploy", "--teacher", str(runs["mlp"]), "--teacher", str(runs["mlp"])]
    argv += ["--student", str(runs["small"]), "--repeats", "5", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {row["name"]: row for row in results["rows"]}
    assert list(rows) == ["teacher", "ensemble", "student"]
    assert rows["teacher"]["parameters"] == 784 * 64 + 64 + 64 * 10 + 10
    assert rows["ensemble"]["parameters"] == 2 * rows["teacher"]["parameters"]
    assert rows["student"]["parameters"] == 784 * 16 + 16 + 16 * 10 + 10
    for row in rows.values():
        for key in ("pytorch_batch_1_ms", "onnxruntime_batch_256_ms"):
            assert 0 < row[key]["median"] <= row[key]["p90"]
    assert "| student | 1 | 12,730 |" in (tmp_path / "README.md").read_text()
