"""Tasks are plug-ins: by name or import path; classification's meter and evaluation agree
with hand counts; a model that rejects the input layout gets a one-line error."""

import pytest
import torch
from torch import nn

from kdistill.data import Batch, Split
from kdistill.errors import KDistillError
from kdistill.tasks import ClassificationTask, Task, create_task


def test_tasks_by_name_and_by_import_path():
    assert isinstance(create_task("classification"), ClassificationTask)
    assert isinstance(create_task("kdistill.tasks.classification:ClassificationTask"), Task)
    with pytest.raises(KDistillError, match="unknown task 'no-such-task'"):
        create_task("no-such-task")
    with pytest.raises(KDistillError, match="must subclass kdistill.tasks.Task"):
        create_task("torch.nn:Linear")


def test_meter_and_evaluation_count_errors_like_a_hand_count():
    task = ClassificationTask()
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 0, 1])
    meter = task.meter(torch.device("cpu"))
    meter.update(logits, Batch(torch.zeros(4, 1), labels, torch.arange(4)))
    assert meter.summary() == {"error_rate": 0.25}

    class Fixed(nn.Module):
        def forward(self, x):
            return logits[x[:, 0].long()]

    split = Split(torch.arange(4.0).reshape(4, 1), labels)
    evaluation = task.evaluate(Fixed(), split, batch_size=3, device=torch.device("cpu"))
    assert evaluation.errors == 1 and evaluation.per_class_errors == [1, 0]
    assert evaluation.summary(with_details=True)["confusion"] == [[2, 1], [0, 1]]


def test_probe_names_the_model_the_shape_and_the_key(mnist):
    task = ClassificationTask()
    split = mnist.test.subset(torch.arange(4))
    with pytest.raises(KDistillError) as error:
        task.probe(nn.Linear(784, 10), split, "student Linear")
    message = str(error.value)
    assert "\n" not in message and "[1, 1, 28, 28]" in message
    assert "data.input_shape=[-1]" in message
    assert task.probe(nn.Sequential(nn.Flatten(), nn.Linear(784, 7)), split, "ok") == 7
