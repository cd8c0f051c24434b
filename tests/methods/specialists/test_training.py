"""Specialists: the dustbin head, the dustbin shift, and a killed specialist that resumes to the
weights of an uninterrupted one while finished specialists are read back."""

import math

import numpy as np
import pytest
import torch

from kdistill.config import TrainRunConfig, parse_config
from kdistill.engine import load_model
from kdistill.engine import resume as resume_module
from kdistill.methods import train
from kdistill.methods.specialists import (
    SpecialistJob,
    dustbin_shift,
    load_specialist,
    specialist_labels,
    train_specialist,
    train_specialists,
)
from kdistill.models import MLP, subset_head


def test_the_dustbin_shift_is_the_log_of_the_oversampling():
    # 10% of the data, half of each batch: the subset is oversampled 5 times.
    assert dustbin_shift(0.1, 0.5, "paper") == pytest.approx(math.log(5))
    # The full prior correction also undoes the dustbin's undersampling: log((1 - f) / f).
    assert dustbin_shift(0.1, 0.5, "prior") == pytest.approx(math.log(9))


def test_the_prior_shift_recovers_the_true_posterior_of_a_balanced_classifier():
    # A classifier trained on s/(1 - s) batches outputs the odds of the balanced prior; the shift
    # turns them into the odds of the data's prior f/(1 - f).
    f, s = 0.2, 0.5
    likelihood_ratio = 3.0  # p(x | subset) / p(x | rest)
    balanced_logit_gap = math.log(likelihood_ratio * s / (1 - s))  # subset minus dustbin
    true_gap = math.log(likelihood_ratio * f / (1 - f))
    assert balanced_logit_gap - dustbin_shift(f, s, "prior") == pytest.approx(true_gap)


def test_labels_map_to_the_specialist_classes_and_the_dustbin():
    labels = torch.tensor([0, 3, 5, 3, 9])
    assert specialist_labels(labels, [3, 5], 10).tolist() == [2, 0, 1, 0, 2]


def test_the_subset_head_copies_its_classes_rows_and_adds_a_dustbin():
    torch.manual_seed(0)
    model = MLP(hidden_sizes=[8], num_classes=5, input_size=4)
    specialist = subset_head(model, [3, 1])
    old, new = model.layers[-1], specialist.layers[-1]
    assert new.out_features == 3 and old.out_features == 5
    assert torch.equal(new.weight[:2], old.weight[[3, 1]])
    assert torch.allclose(new.bias[2], torch.logsumexp(old.bias[[0, 2, 4]], dim=0))
    assert torch.equal(specialist.layers[1].weight, model.layers[1].weight)
    assert specialist.layers[1].weight is not model.layers[1].weight


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 6-class feature data set and a generalist trained on it for one epoch."""
    folder = tmp_path_factory.mktemp("tiny")
    generator = np.random.default_rng(0)
    centres = generator.normal(size=(6, 8)).astype(np.float32)
    y_train, y_test = generator.integers(0, 6, 600), generator.integers(0, 6, 120)
    x_train = centres[y_train] + generator.normal(size=(600, 8)).astype(np.float32)
    x_test = centres[y_test] + generator.normal(size=(120, 8)).astype(np.float32)
    path = folder / "tiny.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    config = parse_config(
        {
            "output_dir": str(folder / "generalist"),
            "data": {"name": f"npz:{path}", "validation_size": 100},
            "model": {
                "name": "mlp",
                "kwargs": {"hidden_sizes": [16], "num_classes": 6, "input_size": 8},
            },
            "train": {"epochs": 1, "batch_size": 50, "progress": False},
        },
        schema=TrainRunConfig,
    )
    train(config)
    return config, folder / "generalist" / "model.safetensors"


def _job(tiny, folder, index=0, classes=(1, 4)):
    config, generalist = tiny
    train_section = config.train.model_copy(update={"epochs": 2})
    return SpecialistJob(
        index=index,
        classes=list(classes),
        generalist=str(generalist),
        config=config.model_copy(update={"train": train_section, "output_dir": str(folder)}),
    )


def test_a_killed_specialist_resumes_to_the_uninterrupted_weights(tiny, tmp_path, monkeypatch):
    whole, whole_cached = train_specialist(_job(tiny, tmp_path / "whole"))
    assert not whole_cached and whole["epochs"] == 2

    real_save = resume_module.save_checkpoint

    def save_then_die(loop, epoch, *args, **kwargs):
        real_save(loop, epoch, *args, **kwargs)
        raise KeyboardInterrupt  # killed right after epoch 1's checkpoint

    monkeypatch.setattr(resume_module, "save_checkpoint", save_then_die)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train_specialist(_job(tiny, killed))
    assert not (killed / "stage.json").exists()
    monkeypatch.setattr(resume_module, "save_checkpoint", real_save)
    resumed, cached = train_specialist(_job(tiny, killed))
    assert not cached and resumed["dustbin_shift"] == whole["dustbin_shift"]
    first, _ = load_model(tmp_path / "whole" / "specialist.safetensors")
    second, classes = load_specialist(killed)
    assert classes == [1, 4]
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # The dustbin bias is the trained one raised by the shift.
    trained, _ = load_model(killed / "model.safetensors")
    assert torch.allclose(
        second.layers[-1].bias[2], trained.layers[-1].bias[2] + resumed["dustbin_shift"]
    )
    again, cached = train_specialist(_job(tiny, killed))
    assert cached and again == resumed


def test_workers_train_the_unfinished_specialists_only(tiny, tmp_path):
    done = _job(tiny, tmp_path / "00", 0, (1, 4))
    first, _ = train_specialist(done)
    # One worker process (spawned, one thread) goes through both jobs.
    results, _ = train_specialists([done, _job(tiny, tmp_path / "01", 1, (0, 2, 5))], workers=1)
    assert results[0] == first  # read back from its marker, not retrained
    assert results[1]["classes"] == [0, 2, 5] and results[1]["epochs"] == 2
