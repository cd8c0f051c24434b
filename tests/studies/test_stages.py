"""The one harness: a unit runs once and is read back; a stage is cached by config digest,
resumed, and found under the older digest."""

import json

import pytest

from kdistill.config import config_digest, parse_config
from kdistill.errors import KDistillError
from kdistill.files import run_once
from kdistill.studies.stages import legacy_stage_digest, run_stage, stage_dir
from tests.conftest import mnist_subset

CONFIG = {
    "seed": 3,
    "data": {"name": "mnist"},
    "model": {"name": "mlp", "kwargs": {"hidden_sizes": [32]}},
    "train": {"epochs": 1, "batch_size": 50, "optimizer": {"name": "sgd", "lr": 0.1}},
}


def test_stage_folder_is_named_by_the_shared_digest_unless_an_older_folder_exists(tmp_path):
    config = parse_config(CONFIG)
    assert config_digest(config) != legacy_stage_digest(config)
    current = tmp_path / f"teacher-{config_digest(config)}"
    legacy = tmp_path / f"teacher-{legacy_stage_digest(config)}"
    assert stage_dir("teacher", config, tmp_path) == current
    legacy.mkdir()
    assert stage_dir("teacher", config, tmp_path) == legacy
    current.mkdir()  # both there: the current one wins
    assert stage_dir("teacher", config, tmp_path) == current


def test_a_stage_finished_under_the_older_digest_is_reused_not_retrained(tmp_path, mnist):
    data = mnist_subset(mnist, 500, 200)
    config = parse_config(CONFIG)
    first = run_stage("student", config, tmp_path, data)
    assert not first.cached and first.run_dir.name == f"student-{config_digest(config)}"
    # The folder as the previous version named it.
    legacy = tmp_path / f"student-{legacy_stage_digest(config)}"
    first.run_dir.rename(legacy)
    again = run_stage("student", config, tmp_path, data)
    assert again.cached and again.run_dir == legacy
    assert again.final == first.final
    # A changed config is a different stage, whichever digest names the folders.
    changed = parse_config({**CONFIG, "seed": 4})
    other = run_stage("student", changed, tmp_path, data)
    assert not other.cached and other.run_dir not in (legacy, first.run_dir)


def test_a_second_call_reads_the_marker_back_without_recomputing(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"errors": 7}

    first = run_once(tmp_path / "unit", {"digest": "a"}, compute)
    again = run_once(tmp_path / "unit", {"digest": "a"}, compute)
    assert first == ({"errors": 7}, False) and again == ({"errors": 7}, True)
    assert len(calls) == 1


def test_a_different_identity_in_the_same_folder_raises_or_recomputes_as_asked(tmp_path):
    run_once(tmp_path, {"digest": "a", "teacher": "t1"}, lambda: {"errors": 1})
    with pytest.raises(KDistillError, match="holds a result for a different digest") as error:
        run_once(tmp_path, {"digest": "b", "teacher": "t1"}, lambda: {"errors": 2})
    assert "\n" not in str(error.value)
    # Only "digest" must match: a changed teacher makes the result stale, so it is recomputed.
    result, cached = run_once(
        tmp_path, {"digest": "a", "teacher": "t2"}, lambda: {"errors": 3}, must_match=("digest",)
    )
    assert (result, cached) == ({"errors": 3}, False)
    assert run_once(tmp_path, {"digest": "a", "teacher": "t2"}, lambda: {})[0] == {"errors": 3}


def test_a_killed_compute_leaves_no_marker_and_runs_again(tmp_path):
    def killed():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_once(tmp_path, {"digest": "a"}, killed)
    assert list(tmp_path.iterdir()) == []
    assert run_once(tmp_path, {"digest": "a"}, lambda: {"errors": 4}) == ({"errors": 4}, False)


def test_a_marker_from_before_identities_goes_to_the_legacy_reader(tmp_path):
    (tmp_path / "stage.json").write_text(json.dumps({"errors": 5, "digest": "a"}))
    same = run_once(tmp_path, {"digest": "a"}, lambda: {"errors": 6}, legacy=lambda old: old)
    assert same == ({"errors": 5, "digest": "a"}, True)
    other, cached = run_once(
        tmp_path,
        {"digest": "b"},
        lambda: {"errors": 6},
        legacy=lambda old: old if old["digest"] == "b" else None,
    )
    assert (other, cached) == ({"errors": 6}, False)
