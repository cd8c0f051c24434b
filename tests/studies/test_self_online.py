"""``kdistill bench self-online``: a one-epoch run writes the tables, a rerun reads every unit
back, and a changed option in the same work folder is a one-line error, not a stale result."""

from __future__ import annotations

import json

import pytest

from kdistill.cli.main import main
from kdistill.studies.self_online import runner, suites


@pytest.fixture
def one_epoch(mnist, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(runner, "load_dataset", lambda name, cache_dir=None: mnist)
    monkeypatch.setitem(suites.SUITES["mnist"], "epochs", 1)
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))


def test_one_epoch_run_writes_the_tables_and_reruns_from_the_markers(
    one_epoch, tmp_path, capsys
) -> None:
    args = ["bench", "self-online", "--datasets", "mnist", "--seeds", "0", "--train-size", "300"]
    paths = ["--work-dir", str(tmp_path / "work"), "--output-dir", str(tmp_path / "out")]
    assert main([*args, *paths]) == 0
    first = capsys.readouterr().out
    assert first.count("[mnist seed 0]") == 7  # three alone, ensemble, born-again, two cohorts
    tables = (tmp_path / "out" / "TABLES.md").read_text()
    assert "| Born-again gen 3 | MLP 800-800 |" in tables and "| DML A+B, member 1 |" in tables
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["command"].startswith("OMP_NUM_THREADS=1 kdistill bench self-online --seeds 0")
    assert len(report["per_seed"]["mnist"][0]["ban"]["errors"]) == 4  # generations 0..3

    assert main([*args, *paths]) == 0
    assert "[mnist seed 0]" not in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "results.json").read_text())["tables"] == report["tables"]

    changed = [*args[:-1], "400", *paths]
    assert main(changed) == 2
    error = capsys.readouterr().err
    assert "holds a result for a different" in error and "data" in error
