"""Corrupt or mismatched inputs are named in one line, never used silently: weights with
non-finite values, teacher-logit cache entries that fail their checksum (rebuilt), models that
do not fit the data, malformed overrides and files that are not what their name says."""

import pytest
import torch

from kdistill import methods
from kdistill.cli.main import main
from kdistill.engine import FitSettings, SupervisedObjective, fit, save_model
from kdistill.engine.checkpoint import load_tensors, save_tensors
from kdistill.errors import KDistillError
from kdistill.models import create_model
from kdistill.teachers import Teacher, teacher_logits_for_split
from tests.reliability.conftest import config, train_config


def _model_file(path, num_classes=10, seed=0):
    torch.manual_seed(seed)
    kwargs = {"hidden_sizes": [16], "num_classes": num_classes}
    save_model(path, create_model("mlp", **kwargs), {"name": "mlp", "kwargs": kwargs})
    return str(path)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdistill: error:") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("checksummed", "says"), [(True, "is corrupt"), (False, "non-finite weights")]
)
def test_a_model_file_with_overwritten_bytes_is_refused_at_load(
    tmp_path, tiny_npz, capsys, checksummed, says
):
    path = _model_file(tmp_path / "model.safetensors")
    if not checksummed:  # as files written before checksums, or by another tool
        import json

        from safetensors.torch import save_file

        tensors, metadata = load_tensors(path)
        save_file(tensors, path, metadata={"kdistill": json.dumps(metadata)})
    payload = bytearray(open(path, "rb").read())
    payload[-64:] = b"\xff" * 64  # float32 0xffffffff is NaN
    open(path, "wb").write(bytes(payload))
    assert main(["evaluate", path, "--data", f"npz:{tiny_npz}"]) == 2
    assert says in _one_line_error(capsys)


def test_a_corrupt_teacher_fails_distill_at_load_not_as_a_learning_rate(tmp_path, tiny):
    teacher = _model_file(tmp_path / "teacher.safetensors")
    tensors, metadata = load_tensors(teacher)
    tensors["layers.1.weight"][0, 0] = float("inf")
    save_tensors(teacher, tensors, metadata)
    raw = train_config(tmp_path / "student", epochs=1)
    raw["distill"] = {"teachers": [{"checkpoint": teacher}]}
    with pytest.raises(KDistillError, match="non-finite weights"):
        methods.distill(config(raw), dataset=tiny)
    assert not (tmp_path / "student").exists()


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("zeros", "did not match its checksum"),
        ("truncate", "was unreadable"),
        ("shape", "had shape"),
        ("unchecked", "did not match its checksum"),  # an entry written before checksums
    ],
)
def test_a_damaged_teacher_logit_cache_entry_is_rebuilt_with_one_line(
    tmp_path, tiny, capsys, damage, says
):
    torch.manual_seed(0)
    teacher = Teacher([create_model("mlp", hidden_sizes=[16])])
    split = tiny.train.subset(torch.arange(300))
    good = teacher_logits_for_split(teacher, split, tmp_path)
    (entry,) = (tmp_path / "teacher-logits").glob("*.safetensors")
    tensors, saved = load_tensors(entry)
    if damage == "zeros":
        save_tensors(entry, {"logits": torch.zeros_like(good)}, saved)
    elif damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "shape":
        save_tensors(entry, {"logits": good[:, :200]}, saved)
    else:
        save_tensors(entry, tensors, {k: v for k, v in saved.items() if k != "sha256"})
    capsys.readouterr()
    again = teacher_logits_for_split(teacher, split, tmp_path)
    torch.testing.assert_close(again, good, rtol=0, atol=0)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "rebuilt" in err[0]
    teacher_logits_for_split(teacher, split, tmp_path)
    assert capsys.readouterr().err == ""  # the rebuilt entry passes its checksum


def test_evaluate_refuses_models_that_do_not_fit_the_data(tmp_path, tiny_npz, capsys):
    data = ["--data", f"npz:{tiny_npz}"]
    three = _model_file(tmp_path / "three.safetensors", num_classes=3)
    assert main(["evaluate", three, *data]) == 2
    assert "outputs 3 classes but tiny has 10" in _one_line_error(capsys)
    ten, twelve = (_model_file(tmp_path / f"{n}.safetensors", n) for n in (10, 12))
    assert main(["evaluate", ten, twelve, *data]) == 2
    assert "different numbers of classes" in _one_line_error(capsys)
    assert main(["evaluate", ten, "--bias-shift", "13=1", *data]) == 2
    assert "class 13" in _one_line_error(capsys)


def test_evaluate_tests_on_the_data_set_the_model_was_trained_on(tmp_path, tiny_npz, capsys):
    run = tmp_path / "run"
    methods.train(config(train_config(run, f"npz:{tiny_npz}", epochs=1)))
    capsys.readouterr()
    assert main(["evaluate", str(run / "model.safetensors")]) == 0
    assert (
        "on tiny test:" in capsys.readouterr().out and "/ 500" in capsys.readouterr().out + "/ 500"
    )


@pytest.mark.parametrize(
    ("override", "says"),
    [("train.epochs=[1", "not valid YAML"), ("train.device=gpu", "is not a device")],
)
def test_bad_overrides_are_one_line(tmp_path, tiny_npz, capsys, override, says):
    path = tmp_path / "run.yaml"
    import yaml

    path.write_text(yaml.safe_dump(train_config(tmp_path / "run", f"npz:{tiny_npz}")))
    assert main(["train", str(path), "--set", override]) == 2
    assert says in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_an_unwritable_output_dir_is_one_line(tmp_path, tiny_npz, capsys):
    path = tmp_path / "run.yaml"
    import yaml

    path.write_text(yaml.safe_dump(train_config("/proc/kdistill-cannot/run", f"npz:{tiny_npz}")))
    assert main(["train", str(path)]) == 2
    assert "cannot create output_dir" in _one_line_error(capsys)


def test_a_text_file_named_npz_is_named_as_such(tmp_path):
    fake = tmp_path / "data.npz"
    fake.write_text("x_train,y_train\n1,2\n")
    from kdistill.data import load_dataset

    with pytest.raises(KDistillError, match="not an .npz archive"):
        load_dataset(f"npz:{fake}")


def test_resuming_a_checkpoint_of_another_architecture_is_one_line(tmp_path, tiny):
    from kdistill.config import DataConfig, TrainConfig
    from kdistill.data import prepare_data

    data = prepare_data(DataConfig(), 0, tiny)
    train = TrainConfig(epochs=1, batch_size=100, progress=False, threads=1)
    settings = FitSettings(train=train, run_dir=tmp_path / "run")
    fit(SupervisedObjective(create_model("mlp", hidden_sizes=[16])), data, settings)
    wider = SupervisedObjective(create_model("mlp", hidden_sizes=[32]))
    with pytest.raises(KDistillError, match="holds other models than this run builds"):
        fit(wider, data, settings, resume=True)
