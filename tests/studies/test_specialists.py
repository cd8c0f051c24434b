"""The specialists study's configs: every stage config and profile loads, and the method
settings are the paper's where it gives them."""

import pytest

from kdistill.errors import KDistillError
from kdistill.studies.specialists import load_profile, method_config
from kdistill.studies.specialists.plan import generalist_config, train_section


def test_every_profile_names_its_seeds_and_epochs():
    for profile in ("quick", "full", "smoke"):
        settings = load_profile(profile)
        assert settings["seeds"] and settings["generalist_epochs"] >= 1
    assert len(load_profile("full")["seeds"]) == 3 == len(load_profile("quick")["seeds"])
    with pytest.raises(KDistillError, match="unknown profile"):
        load_profile("huge")


def test_stage_configs_load_with_the_profile_s_epochs():
    config = generalist_config(2, 5)
    assert config.seed == 2 and config.train.epochs == 5
    assert config.data.name == "mnist-100" and config.data.validation_size > 0
    assert train_section("specialist", 3).epochs == 3
    assert train_section("distilled", 4).epochs == 4


def test_the_method_is_the_paper_s_where_the_paper_says():
    method = method_config()
    assert method.batch_share == 0.5 and method.dustbin_shift == "paper" and method.top_n == 1
