"""The reproduction's smoke profile runs end to end, writes its report, and reuses finished stages."""

import json
from pathlib import Path

import torch

from kdistill.studies import run_reproduction
from kdistill.studies.hinton_mnist import search_bias_shift


def test_smoke_profile_writes_the_report_and_caches_stages(tmp_path):
    results = run_reproduction(
        "hinton-mnist", profile="smoke", output_dir=tmp_path / "report", work_dir=tmp_path / "work"
    )
    report = (tmp_path / "report" / "README.md").read_text()
    for heading in (
        "| experiment | paper | ours |",
        "Temperature sweep",
        "Missing classes",
        "regulariser",
        "## Models",
        "Wall time per stage",
    ):
        assert heading in report
    for plot in ("temperature_sweep.png", "missing_classes.png", "regularizer.png"):
        assert (tmp_path / "report" / plot).stat().st_size > 1000
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert saved["student_hard"]["runs"] == 1
    assert (
        0 < saved["beyond"]["test_errors"] < 2000
        and "beyond: 2x800 distilled from a CNN teacher" in report
    )
    assert 0 < saved["student_distilled"]["mean"] < 2000
    # Model cards for the beyond row too: the CNN teacher and the MLP it taught.
    assert saved["models"]["cnn teacher (beyond)"]["parameters"] > 0
    assert saved["models"]["student from the cnn teacher (beyond)"]["batch_256_ms"] > 0
    assert "| Where the time went" not in report and "## Where the time went" in report
    assert not any(stage["cached"] for stage in results["stages"].values())
    # Without --output-dir the report goes beside the runs, never into docs/results.
    again = run_reproduction("hinton-mnist", profile="smoke", work_dir=tmp_path / "work")
    assert Path(again["report"]) == tmp_path / "work" / "report" / "README.md"
    assert all(stage["cached"] for stage in again["stages"].values())
    assert again["student_distilled"] == results["student_distilled"]


def test_bias_shift_search_picks_the_shift_with_fewest_validation_errors():
    # Class 2 is under-predicted by 1.5 logits: a shift of +1.5 or more fixes every case.
    logits = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [2.0, 0.0, 0.0]])
    labels = torch.tensor([2, 2, 0])
    shift, errors = search_bias_shift(logits, labels, [2], torch.arange(0, 4.01, 0.5))
    assert shift == 1.5
    assert errors[:3] == [2, 2, 2] and errors[3] == 0


def test_paper_profile_trains_teachers_and_students_until_validation_stalls():
    from kdistill.studies.hinton_mnist.plan import load_profile, stage_config

    profile = load_profile("paper")
    assert profile["teacher_epochs"] >= 500
    for prefix, config_name in (
        ("teacher-", "teacher"),
        ("student-hard-", "student-hard"),
        ("student-distilled-", "student-distilled"),
    ):
        config = stage_config(config_name, profile["stage_overrides"][prefix])
        assert config.train.early_stopping is not None
        assert config.train.early_stopping.split == "validation"
        assert config.data.validation_size == 10_000
    # The teacher stays jittered, as the paper's was.
    assert stage_config("teacher", profile["stage_overrides"]["teacher-"]).data.max_shift == 2
