"""The GAN Compression study: its configs parse for their verbs and differ only where the rows
do; the report's verdict follows the paired Frechet distances."""

from pathlib import Path

import pytest

from kdistill.config import DistillRunConfig, TrainRunConfig, load_config
from kdistill.studies.gan_compression.plan import (
    STUDENTS,
    recipe,
    student_config,
    teacher_config,
)
from kdistill.studies.gan_compression.report import render_report, summarise, verdicts

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "gan-compression"


def test_cli_configs_load_for_their_verbs():
    for name in ("classifier", "teacher", "student-scratch"):
        assert isinstance(load_config(CONFIGS / f"{name}.yaml"), TrainRunConfig)
    for name in ("student-reconstruction", "student-features", "student-all"):
        config = load_config(CONFIGS / f"{name}.yaml")
        assert isinstance(config, DistillRunConfig) and config.task == "generation"
        assert config.gan is not None and config.gan.discriminator_init is not None


def test_student_rows_are_the_same_generator_with_their_terms():
    teacher = teacher_config("mnist", 2, Path("c.safetensors"))
    assert teacher.model.kwargs["channels"] == 4 * 6
    kinds = {}
    for student in STUDENTS:
        config = student_config("mnist", student, 1, 2, Path("c.safetensors"), Path("t"))
        assert (config.seed, config.train.epochs, config.model.kwargs) == (1, 2, {"channels": 6})
        terms = config.distill.terms if isinstance(config, DistillRunConfig) else []
        kinds[student] = sorted(term.kind for term in terms)
    assert kinds == {
        "scratch": [],
        "reconstruction": ["reconstruction"],
        "features": ["generator_features", "generator_features"],
        "all": ["generator_features", "generator_features", "reconstruction"],
    }


def _run(fd: float) -> dict:
    return {
        "frechet_distance": fd,
        "accuracy": 0.5,
        "precision": 0.4,
        "recall": 0.1,
        "l1_to_teacher": 0.2,
        "seconds": 1.0,
    }


def test_verdict_follows_the_paired_frechet_distances():
    cells = {
        "mnist": {
            "scratch": [_run(10.0), _run(12.0)],
            "reconstruction": [_run(8.0), _run(13.0)],  # one seed lower, one higher
            "features": [_run(11.0), _run(12.5)],
            "all": [_run(6.0), _run(7.0)],
        }
    }
    summary = summarise(cells)
    row = summary["mnist"]["all"]
    assert row["delta_frechet_distance"][0] == pytest.approx(-4.5)
    assert row["lower_frechet_distance"] == 2
    assert summary["mnist"]["reconstruction"]["lower_frechet_distance"] == 1
    (line,) = verdicts(summary)
    assert "**lowered**" in line and "2/2 seeds lower" in line
    cells["mnist"]["all"] = [_run(11.0), _run(12.5)]
    assert "**did not lower**" in verdicts(summarise(cells))[0]
    cells["mnist"]["all"] = [_run(6.0), _run(12.5)]  # -4 and +0.5: lower on average only
    assert "**lowered on average only**" in verdicts(summarise(cells))[0]


def test_report_renders_every_row_and_the_grid():
    cells = {"fashion-mnist": {s: [_run(5.0 - i)] for i, s in enumerate(STUDENTS)}}
    size = {"parameters": 10, "macs": 100, "latency_ms_batch_1": 1.0, "latency_ms_batch_64": 2.0}
    report = {
        "command": "kdistill bench gan-compression",
        "machine": "test",
        "wall_seconds_this_invocation": 1.0,
        "load_average_1_5_15_min": {"start": [1.0, 1.0, 1.0], "end": [2.0, 2.0, 2.0]},
        "recipe": recipe("fashion-mnist"),
        "rule": "last epoch",
        "train_size": 100,
        "subset_seed": 1,
        "epochs": 1,
        "seeds": [0],
        "classifiers": {"fashion-mnist": {"test_errors": 100, "test_total": 1000}},
        "teachers": {"fashion-mnist": _run(2.0)},
        "sizes": {
            "fashion-mnist": {
                "teacher": size,
                "student": size,
                "teacher_over_student": {key: 1.0 for key in size},
                "repeats": 3,
            }
        },
        "grids": {"fashion-mnist": "grid-fashion-mnist.png"},
        "summary": summarise(cells),
    }
    text = render_report(report)
    assert "not Inception-FID" in text and "(grid-fashion-mnist.png)" in text
    assert text.count("| Student") == len(STUDENTS)
    assert "10.00% test error" in text
    assert "teacher channels 96-48-24, student 24-12-6" in text
    assert "`blocks.0` (weight 1), `blocks.1` (weight 1)" in text
