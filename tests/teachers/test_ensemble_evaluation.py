"""Ensembles evaluated as their soft targets are formed (arithmetic or geometric mean)."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdistill.data import Split
from kdistill.teachers import Teacher, evaluate_growing_ensembles, evaluate_teacher


def test_prefix_ensembles_equal_a_hand_average():
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)) for _ in range(3)]
    images = torch.randint(0, 256, (7, 1, 2, 2), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    split = Split(images, labels)
    ensembles = evaluate_growing_ensembles(models, {"test": split}, batch_size=3)
    with torch.no_grad():
        probs = [F.softmax(m(images.float() / 255.0), dim=1).tolist() for m in models]
    for size in (1, 2, 3):
        errors, nll = 0, 0.0
        for i, label in enumerate(labels.tolist()):
            mean = [sum(probs[m][i][c] for m in range(size)) / size for c in range(3)]
            errors += max(range(3), key=mean.__getitem__) != label
            nll -= math.log(mean[label]) / len(labels)
        assert ensembles[size - 1]["test"].errors == errors
        assert ensembles[size - 1]["test"].loss == pytest.approx(nll, abs=1e-5)


def test_geometric_ensemble_is_the_normalised_geometric_mean_and_members_are_tested_alone():
    torch.manual_seed(1)
    models = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)) for _ in range(2)]
    images = torch.randint(0, 256, (9, 1, 2, 2), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    combined, members = evaluate_teacher(Teacher(models), Split(images, labels), "geometric")
    with torch.no_grad():
        probs = [F.softmax(m(images.float() / 255.0), dim=1) for m in models]
    root = (probs[0] * probs[1]).sqrt()
    geometric = root / root.sum(dim=1, keepdim=True)
    assert combined.errors == int((geometric.argmax(dim=1) != labels).sum())
    expected_nll = -geometric[torch.arange(9), labels].log().mean().item()
    assert combined.loss == pytest.approx(expected_nll, abs=1e-5)
    for member, member_probs in zip(members, probs, strict=True):
        assert member.errors == int((member_probs.argmax(dim=1) != labels).sum())
