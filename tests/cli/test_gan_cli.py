"""The GAN verbs from the command line: ``kdistill train`` and ``kdistill distill`` with the
gan-compression configs (tiny sizes, a real-MNIST npz), resume, and one-line errors."""

import json
from pathlib import Path

from kdistill.cli.main import main
from kdistill.engine import load_model, save_model
from kdistill.models import create_model
from tests.conftest import write_mnist_npz

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "gan-compression"


def _small(tmp_path: Path, classifier: Path, data: Path) -> list[str]:
    return [
        "--set", f"data.name=npz:{data}",
        "--set", f"gan.classifier={classifier}",
        "--set", "gan.eval_samples=100",
        "--set", "gan.discriminator.kwargs.channels=4",
        "--set", "train.epochs=1",
        "--set", "train.progress=false",
        "--set", "train.threads=1",
    ]  # fmt: skip


def test_train_then_distill_a_generator_from_the_command_line(tmp_path, mnist, capsys):
    data = write_mnist_npz(tmp_path / "mnist.npz", mnist, 256, 200)
    classifier = tmp_path / "classifier.safetensors"
    save_model(
        classifier,
        create_model("cnn", channels=[4, 8]),
        {"name": "cnn", "kwargs": {"channels": [4, 8]}},
    )
    teacher_dir = tmp_path / "teacher"
    argv = ["train", str(CONFIGS / "teacher.yaml"), *_small(tmp_path, classifier, data)]
    assert main([*argv, "--set", "model.kwargs.channels=8", "--output-dir", str(teacher_dir)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["test_errors"]["model"]["test"] <= 100
    generator, metadata = load_model(teacher_dir / "model.safetensors")
    assert metadata["task"] == "generation" and generator.noise_size == 32
    assert (teacher_dir / "discriminator.safetensors").exists()

    student = [
        "distill", str(CONFIGS / "student-all.yaml"), *_small(tmp_path, classifier, data),
        "--set", "model.kwargs.channels=2",
        "--set", f"gan.discriminator_init={teacher_dir / 'discriminator.safetensors'}",
        "--set", f"distill.teachers=[{{checkpoint: {teacher_dir / 'model.safetensors'}}}]",
        "--output-dir", str(tmp_path / "student"),
    ]  # fmt: skip
    assert main(student) == 0
    assert main([*student, "--resume", "--set", "train.epochs=2"]) == 0
    record = json.loads((tmp_path / "student" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 2
    assert set(record["train"]["loss"]) == {
        "reconstruction",
        "generator_features.1",
        "generator_features.2",
        "discriminator",
        "adversarial",
    }

    capsys.readouterr()
    assert main(["evaluate", str(teacher_dir / "model.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "GAN's generator" in err


def test_generation_without_a_gan_section_is_a_one_line_error(tmp_path, capsys):
    config = tmp_path / "g.yaml"
    config.write_text("task: generation\nmodel: {name: cgan-generator}\n")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gan.classifier" in err
