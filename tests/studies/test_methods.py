"""``kdistill bench methods``: a smoke run that writes the table, resumes from its per-run
JSON files, and stays in step with ``configs/methods/*.yaml``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdistill.benchmarks import methods as bench
from kdistill.cli.main import main
from kdistill.config import load_config
from kdistill.data import DataSet
from kdistill.errors import KDistillError

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
    monkeypatch.setattr(bench, "load_dataset", lambda name, cache_dir=None: mnist)
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

    # A killed benchmark: one run's record is missing; only that run trains again.
    (tmp_path / "work" / "mnist" / "results" / "kd+at" / "seed-0.json").unlink()
    assert main([*SMOKE, *paths]) == 0
    second = capsys.readouterr().out
    assert second.count("seed 0]") == 1 and "[mnist kd+at seed 0]" in second


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(KDistillError, match="unknown method.*use any of logit_l2, dkd"):
        bench.BenchSettings(methods=["atx"]).check()
    with pytest.raises(KDistillError, match="unknown data set"):
        bench.BenchSettings(datasets=["cifar"]).check()
    assert main(["bench", "methods", "--seeds", "0"]) == 2


def test_variant_configs() -> None:
    settings = bench.BenchSettings()
    teacher = Path("t.safetensors")
    student = bench.variant_config(settings, "mnist", "student", 1, teacher, Path("r"))
    assert student.distill is None and student.seed == 1
    alone = bench.variant_config(settings, "mnist", "sp", 1, teacher, Path("r"))
    assert alone.distill.soft_target_weight == 0 and alone.distill.hard_target_weight == 1
    assert [term.kind for term in alone.distill.terms] == ["sp"]
    combined = bench.variant_config(settings, "mnist", "kd+sp", 1, teacher, Path("r"))
    assert combined.distill.soft_target_weight == bench.KD_SOFT_WEIGHT
    assert [term.kind for term in combined.distill.terms] == ["sp"]
    assert bench.variant_config(settings, "mnist", "kd", 1, teacher, Path("r")).distill.terms == []


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
    summary = bench.summarise(records, {})["d"]["variants"]
    assert summary["student"]["accuracy_mean"] == pytest.approx(91.0)
    assert summary["at"]["accuracy_std"] == pytest.approx(2 * 2**0.5, abs=1e-3)
    assert summary["at"]["epoch_time_ratio"] == pytest.approx((3.0 + 1.0) / 2)


def test_configs_match_the_benchmark() -> None:
    folder = REPO / "configs" / "methods"
    settings = bench.BenchSettings()
    for key, method in bench.METHODS.items():
        config = load_config(folder / f"{key}.yaml")
        assert config.distill is not None
        terms = [term.model_dump() for term in config.distill.terms]
        assert terms == method.term_entries(), key
        expected = bench.variant_config(
            settings, config.data.name, key, 0, Path("t"), Path(config.output_dir)
        )
        assert config.model == expected.model, key
        local = {"threads", "progress"}  # how a run prints and uses the CPU, not what it computes
        assert config.train.model_dump(exclude=local) == expected.train.model_dump(exclude=local), (
            key
        )
        assert config.distill.soft_target_weight == 0 and config.distill.hard_target_weight == 1
    teacher = load_config(folder / "teacher.yaml")
    assert teacher.model.kwargs["channels"] == settings.teacher_channels


def test_bench_dataset_subsets_are_stratified_and_fixed(mnist, monkeypatch) -> None:
    monkeypatch.setattr(bench, "load_dataset", lambda name, cache_dir=None: mnist)
    first = bench.bench_dataset("mnist", 1000, 500)
    second = bench.bench_dataset("mnist", 1000, 500)
    assert isinstance(first, DataSet) and len(first.train) == 1000 and len(first.test) == 500
    assert torch.equal(first.train.labels, second.train.labels)
    assert int(first.train.class_counts(10).min()) >= 80
