import pytest

from kdistill.config import load_config
from kdistill.errors import KDistillError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\ndistill:\n  teachers: [{checkpoint: t.safetensors}]\n")
    config = load_config(
        path, ["train.optimizer.lr=0.05", "distill.temperature=8", "data.keep_classes=[7, 8]"]
    )
    assert config.train.epochs == 3
    assert config.train.optimizer.lr == 0.05
    assert config.distill.temperature == 8
    assert config.distill.hard_target_weight == 0.1
    assert config.data.keep_classes == [7, 8]


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("train:\n  optimzer: {}\n", [], r"key train\.optimzer: unknown key"),
        ("train:\n  epochs: zero\n", [], r"key train\.epochs: Input should be a valid integer"),
        ("distill:\n  temperature: 2\n", [], r"key distill\.teachers: Field required"),
        (
            "distill:\n  teachers: [{checkpoint: a}]\n  temperature: -1\n",
            [],
            r"key distill\.temperature",
        ),
        ("train: [1, 2\n", [], r"not valid YAML at line"),
        ("- just a list\n", [], r"expected a mapping"),
        ("", ["train.epochs"], r"not of the form key\.sub=value"),
        ("train:\n  epochs: 3\n", ["train.epochs.x=1"], r"'epochs' is a value, not a section"),
        ("data:\n  keep_classes: []\n", [], r"data\.keep_classes is empty"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, overrides, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(KDistillError, match=message) as caught:
        load_config(path, overrides)
    assert "\n" not in str(caught.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(KDistillError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_every_shipped_config_is_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    # configs/hinton-mnist and configs/methods link to the studies' package data.
    # configs/specialists/method.yaml is the specialists method's own settings, not a run.
    skip = {"profiles.yaml", "method.yaml"}
    paths = [p for p in sorted(root.glob("*/*.yaml")) if p.name not in skip]
    assert len(paths) >= 20
    for path in paths:
        load_config(path)  # raises a one-line KDistillError naming the key if not


def test_config_digest_follows_what_is_trained_only():
    from kdistill.config import config_digest, parse_config

    base = parse_config({"train": {"epochs": 3}})
    same = parse_config(
        {"output_dir": "elsewhere", "train": {"epochs": 3, "threads": 1, "progress": False}}
    )
    explicit_default = parse_config({"train": {"epochs": 3, "batch_size": 100}})
    assert config_digest(base) == config_digest(same) == config_digest(explicit_default)
    assert config_digest(base) != config_digest(parse_config({"train": {"epochs": 4}}))
    assert config_digest(base) != config_digest(parse_config({"train": {"epochs": 3}, "seed": 1}))
    assert config_digest(base, drop=("train.epochs",)) == config_digest(
        parse_config({"train": {"epochs": 4}}), drop=("train.epochs",)
    )


def test_an_all_default_verb_section_still_changes_the_digest():
    from kdistill.config import (
        BornAgainRunConfig,
        NetAugRunConfig,
        TrainRunConfig,
        config_digest,
    )

    train = config_digest(TrainRunConfig())
    assert config_digest(NetAugRunConfig()) != train
    assert config_digest(BornAgainRunConfig()) != train
    assert config_digest(BornAgainRunConfig(), drop=("born_again.generations",)) != train
