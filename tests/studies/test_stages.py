"""Reproduction stages: cached by config digest, resumed, and found under the older digest."""

from kdistill.config import config_digest, parse_config
from kdistill.experiments.stages import legacy_stage_digest, run_stage, stage_dir
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
