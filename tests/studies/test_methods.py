"""``kdistill bench methods``: a smoke run that writes the table and resumes from its per-run
JSON files; the catalogue is every method config in ``configs/methods/*.yaml``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdistill.cli.main import main
from kdistill.data import DataSet
from kdistill.errors import KDistillError
from kdistill.studies.methods import catalogue, settings, stats

REPO = Path(__file__).resolve().parents[2]
SMOKE = [
    "bench",
    "methods",
    "--datasets",
    "mnist",
    "--methods",
    "at",
    "--seeds",
    "1",
    "--epochs",
    "1",
    "--train-size",
    "200",
    "--test-size",
    "200",
    "--threads",
    "1",
    "--teacher-channels",
    "4,8,8",
    "--student-channels",
    "2,4,4",
]


@pytest.fixture
def small_mnist(mnist, monkeypatch, tmp_path) -> None:
    """The bench reads the session's MNIST; teacher logits go to a temporary cache."""
    monkeypatch.setattr(settings, "load_dataset", lambda name, cache_dir=None: mnist)
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))


def test_smoke_run_writes_the_table_and_resumes(small_mnist, tmp_path, capsys) -> None:
    paths = ["--output", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]
    assert main([*SMOKE, *paths]) == 0
    first = capsys.readouterr().out
    assert first.count("seed 0]") == 5  # teacher, student, kd, at, kd+at
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "| student (hard labels) |" in readme and "| AT |" in readme
    assert "kdistill bench methods --datasets mnist --seeds 1 --epochs 1" in readme
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    variants = results["summary"]["mnist"]["variants"]
    assert list(variants) == ["student", "kd", "at", "kd+at"]
    assert variants["student"]["epoch_time_ratio"] == 1.0
    assert all(0 <= entry["accuracy_mean"] <= 100 for entry in variants.values())
    assert results["rule"].startswith("test accuracy after the last epoch")
    # Which rows read cached teacher logits is recorded by the runs, not stated by the code.
    assert variants["kd"]["teacher_cache"] is True and variants["at"]["teacher_cache"] is False
    assert "Read cached teacher logits: KD; ran the teacher live on every batch" in readme

    # A killed benchmark: one run's record is missing; only that run trains again.
    (tmp_path / "work" / "mnist" / "results" / "kd+at" / "seed-0.json").unlink()
    assert main([*SMOKE, *paths]) == 0
    second = capsys.readouterr().out
    assert second.count("seed 0]") == 1 and "[mnist kd+at seed 0]" in second


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(KDistillError, match="unknown method.*use any of logit_l2, dkd"):
        settings.BenchSettings(methods=["atx"]).check()
    with pytest.raises(KDistillError, match="unknown data set"):
        settings.BenchSettings(datasets=["cifar"]).check()
    assert main(["bench", "methods", "--seeds", "0"]) == 2


def test_variant_configs() -> None:
    defaults = settings.BenchSettings()
    teacher = Path("t.safetensors")
    student = settings.variant_config(defaults, "mnist", "student", 1, teacher, Path("r"))
    assert not hasattr(student, "distill") and student.seed == 1
    alone = settings.variant_config(defaults, "mnist", "sp", 1, teacher, Path("r"))
    assert alone.distill.soft_target_weight == 0 and alone.distill.hard_target_weight == 1
    assert [term.kind for term in alone.distill.terms] == ["sp"]
    combined = settings.variant_config(defaults, "mnist", "kd+sp", 1, teacher, Path("r"))
    assert combined.distill.soft_target_weight == settings.KD_SOFT_WEIGHT
    assert [term.kind for term in combined.distill.terms] == ["sp"]
    assert (
        settings.variant_config(defaults, "mnist", "kd", 1, teacher, Path("r")).distill.terms == []
    )


def test_summary_statistics() -> None:
    records = [
        {"dataset": "d", "variant": v, "seed": s, "test_accuracy": a, "epoch_seconds": [t, t]}
        for v, s, a, t in [
            ("student", 0, 0.90, 1.0),
            ("student", 1, 0.92, 2.0),
            ("at", 0, 0.91, 3.0),
            ("at", 1, 0.95, 2.0),
        ]
    ]
    summary = stats.summarise(records, {})["d"]["variants"]
    assert summary["student"]["accuracy_mean"] == pytest.approx(91.0)
    assert summary["at"]["accuracy_std"] == pytest.approx(2 * 2**0.5, abs=1e-3)
    assert summary["at"]["epoch_time_ratio"] == pytest.approx((3.0 + 1.0) / 2)


def test_every_config_parses_and_the_catalogue_lists_the_method_configs() -> None:
    folder = REPO / "configs" / "methods"
    names = sorted(path.stem for path in folder.glob("*.yaml"))
    assert set(catalogue.config_paths()) == set(names) and len(names) == 15
    for name in names:
        assert catalogue.load_catalogue_config(name).model.name == "cnn", name
    table = catalogue.methods()
    extras = {"teacher", "student", "kd", "fitnet-two-stage"}
    assert sorted(table) == sorted(set(names) - extras)
    assert list(table)[:2] == ["logit_l2", "dkd"] and table["at"].label == "AT"
    assert table["at"].source == "the AT paper's beta = 1000 on the squared form (as RepDistiller)"
    # Run by hand, a method's config trains the bench's default student and schedule.
    defaults = settings.BenchSettings()
    local = {"threads", "progress"}  # how a run prints and uses the CPU, not what it computes
    for key, method in table.items():
        config = catalogue.load_catalogue_config(key)
        assert [term.model_dump() for term in config.distill.terms] == method.term_entries()
        expected = settings.variant_config(defaults, config.data.name, key, 0, Path("t"), Path("r"))
        assert config.model == expected.model, key
        assert config.train.model_dump(exclude=local) == expected.train.model_dump(exclude=local)
        assert config.distill.soft_target_weight == 0 and config.distill.hard_target_weight == 1
    teacher = catalogue.load_catalogue_config("teacher")
    assert teacher.model.kwargs["channels"] == defaults.teacher_channels


def test_bench_dataset_subsets_are_stratified_and_fixed(mnist, monkeypatch) -> None:
    monkeypatch.setattr(settings, "load_dataset", lambda name, cache_dir=None: mnist)
    first = settings.bench_dataset("mnist", 1000, 500)
    second = settings.bench_dataset("mnist", 1000, 500)
    assert isinstance(first, DataSet) and len(first.train) == 1000 and len(first.test) == 500
    assert torch.equal(first.train.labels, second.train.labels)
    assert int(first.train.class_counts(10).min()) >= 80
