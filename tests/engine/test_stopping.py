"""Early stopping: the patience count, a run that stops (and stays stopped on resume), and the
one-line errors for a split or metric the run does not evaluate."""

import pytest
import torch

from kdistill.config import EarlyStoppingConfig, OptimizerConfig, TrainConfig
from kdistill.data import TrainingData
from kdistill.engine import FitSettings, SupervisedObjective, fit
from kdistill.engine.stopping import epochs_without_improvement
from kdistill.errors import KDistillError
from kdistill.models import create_model


def test_epochs_without_improvement_counts_from_the_first_best():
    assert epochs_without_improvement([], "min") == 0
    assert epochs_without_improvement([5, 3, 4, 4], "min") == 2
    assert epochs_without_improvement([5, 3, 3], "min") == 1
    assert epochs_without_improvement([5, 6, 2], "min") == 0
    assert epochs_without_improvement([0.1, 0.9, 0.5, 0.8], "max") == 2


def _data(mnist, validation=True):
    train = mnist.train.subset(torch.arange(600))
    splits = {"test": mnist.test.subset(torch.arange(300))}
    if validation:
        splits = {"validation": mnist.train.subset(torch.arange(600, 900)), **splits}
    return TrainingData(train, splits, mnist)


def _settings(tmp_path, rule, lr=1e-9, epochs=8):
    train = TrainConfig(
        epochs=epochs,
        batch_size=100,
        optimizer=OptimizerConfig(lr=lr),
        early_stopping=rule,
        progress=False,
    )
    return FitSettings(train=train, run_dir=tmp_path)


def test_a_run_whose_validation_errors_stand_still_stops_and_stays_stopped(tmp_path, mnist):
    # A learning rate of 1e-9 leaves the predictions, hence the validation errors, unchanged:
    # epoch 1 is the best, epochs 2 and 3 do not improve on it, patience 2 ends the run there.
    rule = EarlyStoppingConfig(patience=2)
    torch.manual_seed(0)
    objective = SupervisedObjective(create_model("mlp", hidden_sizes=[16]))
    result = fit(objective, _data(mnist), _settings(tmp_path, rule))
    errors = [record["model"]["validation"]["errors"] for record in result.history]
    assert len(errors) == 3 and len(set(errors)) == 1
    again = fit(objective, _data(mnist), _settings(tmp_path, rule), resume=True)
    assert len(again.history) == 3  # the resumed run does not train past the stop


def test_a_learning_run_is_not_stopped(tmp_path, mnist):
    torch.manual_seed(0)
    objective = SupervisedObjective(create_model("mlp", hidden_sizes=[16]))
    rule = EarlyStoppingConfig(patience=3)
    result = fit(objective, _data(mnist), _settings(tmp_path, rule, lr=0.1, epochs=3))
    assert len(result.history) == 3


def test_unevaluated_split_or_metric_is_a_one_line_error(tmp_path, mnist):
    objective = SupervisedObjective(create_model("mlp", hidden_sizes=[8]))
    with pytest.raises(KDistillError, match="data.validation_size"):
        fit(
            objective,
            _data(mnist, validation=False),
            _settings(tmp_path / "a", EarlyStoppingConfig(patience=1)),
        )
    rule = EarlyStoppingConfig(patience=1, metric="mIoU")
    with pytest.raises(KDistillError, match="has no such figure.*errors"):
        fit(objective, _data(mnist), _settings(tmp_path / "b", rule))
