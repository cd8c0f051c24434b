"""The command line: useful help, one-line errors with exit status 2, evaluate."""

import subprocess
import sys

import pytest
import torch

from kdistill.cli.main import main
from kdistill.engine import save_model
from kdistill.models import create_model


@pytest.mark.parametrize(
    "verb",
    [None, "train", "distill", "evaluate", "reproduce", "born-again", "mutual", "bench", "netaug"],
)
def test_help_is_useful(verb, capsys):
    argv = ["--help"] if verb is None else [verb, "--help"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: kdistill" in out
    if verb is None:
        for name in ("train", "distill", "evaluate", "reproduce", "examples:"):
            assert name in out


def test_bad_inputs_print_one_line_and_exit_2(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  epochz: 3\n")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.epochz: unknown key" in err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["reproduce", "no-such-paper"]) == 2
    assert "unknown reproduction" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "none.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_distill_with_wrong_teacher_path_is_one_line(tmp_path, capsys):
    config = tmp_path / "d.yaml"
    config.write_text(
        f"data: {{name: 'npz:{tmp_path}/none.npz'}}\ndistill:\n  teachers: [{{checkpoint: {tmp_path}/t.safetensors}}]\n"
    )
    assert main(["distill", str(config)]) == 2
    assert capsys.readouterr().err.startswith("kdistill: error: ")


def test_evaluate_prints_errors_and_applies_bias_shift(tmp_path, mnist, capsys, monkeypatch):
    torch.manual_seed(0)
    model = create_model("mlp", hidden_sizes=[8])
    save_model(tmp_path / "m.safetensors", model, {"name": "mlp", "kwargs": {"hidden_sizes": [8]}})
    assert main(["evaluate", str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "errors / 10000" in out and "per-class errors" in out
    assert (
        main(["evaluate", str(tmp_path / "m.safetensors"), "--bias-shift", "3=1000", "--json"]) == 0
    )
    out = capsys.readouterr().out
    assert '"per_class_errors": [980, 1135, 1032, 0,' in out  # every digit is now called a 3
    assert main(["evaluate", str(tmp_path / "m.safetensors"), "--bias-shift", "three"]) == 2


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "kdistill", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith("kdistill ")


def test_evaluate_several_files_as_an_ensemble(tmp_path, mnist, capsys):
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_model(
            tmp_path / f"m{seed}.safetensors",
            create_model("mlp", hidden_sizes=[8]),
            {"name": "mlp", "kwargs": {"hidden_sizes": [8]}},
        )
    files = [str(tmp_path / "m0.safetensors"), str(tmp_path / "m1.safetensors")]
    assert main(["evaluate", *files, "--ensemble-rule", "geometric"]) == 0
    out = capsys.readouterr().out
    assert out.count("errors / 10000") == 3 and "geometric ensemble of 2 on mnist test" in out


@pytest.mark.parametrize(
    ("verb", "config", "words"),
    [
        ("train", "configs/hinton-mnist/student-distilled.yaml", "key distill: this verb does not"),
        ("distill", "configs/hinton-mnist/teacher.yaml", "no distill section"),
        ("born-again", "configs/mutual/mnist-mlp-pair.yaml", "key mutual: this verb does not"),
        ("mutual", "configs/born-again/mnist-mlp.yaml", "no mutual section"),
        ("train", "configs/netaug/mnist-mlp30.yaml", "key netaug: this verb does not"),
        ("netaug", "configs/hinton-mnist/student-distilled.yaml", "key distill: this verb does"),
    ],
)
def test_each_verb_refuses_another_verbs_section(verb, config, words, capsys):
    # `kdistill train` on a distillation config used to train a plain model silently.
    assert main([verb, config, "--output-dir", "/nonexistent/never-written"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and words in error


def test_an_unknown_device_is_a_one_line_error_before_anything_is_written(tmp_path, capsys):
    argv = ["train", "configs/hinton-mnist/teacher.yaml", "--set", "train.device=gpu"]
    assert main([*argv, "--output-dir", str(tmp_path / "run")]) == 2
    assert "train.device=gpu is not a device" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
