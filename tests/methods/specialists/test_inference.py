"""The paper's inference (eq. 5): the optimum found by gradient descent against brute force on
small cases; no active specialist leaves the generalist's distribution; Tables 3 and 4."""

import itertools

import pytest
import torch

from kdistill.methods.specialists import (
    active_specialists,
    combine,
    conditional_accuracy,
    gain_by_coverage,
    group_membership,
)
from kdistill.methods.specialists.inference import gradient, objective, specialist_targets


def _simplex_grid(classes: int, steps: int) -> torch.Tensor:
    points = [c for c in itertools.product(range(steps + 1), repeat=classes - 1) if sum(c) <= steps]
    grid = torch.tensor([[*c, steps - sum(c)] for c in points], dtype=torch.float64) / steps
    grid = grid.clamp_min(1e-9)
    return grid / grid.sum(dim=1, keepdim=True)


def test_the_optimum_matches_brute_force_over_the_simplex():
    torch.manual_seed(0)
    classes, groups = 4, [[0, 1], [1, 2]]
    generalist = torch.log_softmax(2 * torch.randn(6, classes), dim=1)
    specialists = [torch.softmax(2 * torch.randn(6, 3), dim=1) for _ in groups]
    active = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0], [0, 1]], dtype=torch.bool)
    log_q = combine(generalist, specialists, groups, active, steps=400, tolerance=1e-9)
    inside, dustbin = specialist_targets(specialists, groups, active, classes)
    targets = generalist.exp() + inside
    outside = (~group_membership(groups, classes)).double()
    grid = _simplex_grid(classes, 60)
    for case in range(6):
        on_grid = objective(
            grid.log(),
            targets[case : case + 1].double().expand(len(grid), -1),
            dustbin[case : case + 1].double().expand(len(grid), -1),
            outside,
        )
        found = objective(
            log_q[case : case + 1].double(),
            targets[case : case + 1].double(),
            dustbin[case : case + 1].double(),
            outside,
        )
        assert float(found) <= float(on_grid.min()) + 1e-5
        assert torch.allclose(log_q[case].exp().double(), grid[on_grid.argmin()], atol=0.02)


def test_one_specialist_covering_everything_but_one_class_has_a_closed_form():
    # With p^m over classes {0, 1} + dustbin {2}: the minimum of KL(p^g, q) + KL(p^m, q) is
    # q = (p^g + p^m) / 2, dustbin mass compared with q_2.
    generalist = torch.tensor([[0.5, 0.3, 0.2]]).log()
    specialist = torch.tensor([[0.2, 0.6, 0.2]])
    log_q = combine(generalist, [specialist], [[0, 1]], torch.tensor([[True]]), steps=400)
    assert torch.allclose(log_q.exp(), torch.tensor([[0.35, 0.45, 0.2]]), atol=1e-3)


def test_without_an_active_specialist_q_is_the_generalist_distribution():
    generalist = torch.log_softmax(torch.randn(5, 6), dim=1)
    specialists = [torch.softmax(torch.randn(5, 3), dim=1)]
    active = torch.zeros(5, 1, dtype=torch.bool)
    log_q = combine(generalist, specialists, [[0, 1]], active)
    assert torch.equal(log_q, torch.log_softmax(generalist, dim=1))


def test_the_closed_form_gradient_is_autograd_s():
    torch.manual_seed(1)
    groups = [[0, 2], [1, 2, 3]]
    specialists = [torch.softmax(torch.randn(4, len(g) + 1), dim=1).double() for g in groups]
    active = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1]], dtype=torch.bool)
    inside, dustbin = specialist_targets(specialists, groups, active, 5)
    targets = torch.softmax(torch.randn(4, 5), dim=1).double() + inside
    outside = (~group_membership(groups, 5)).double()
    z = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(objective(z, targets, dustbin, outside).sum(), z)
    assert torch.allclose(gradient(z.detach(), targets, dustbin, outside), expected)


def test_specialists_are_active_when_they_cover_one_of_the_top_n_classes():
    probs = torch.tensor([[0.6, 0.3, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]])
    member = group_membership([[0], [1, 2], [3]], 4)
    assert active_specialists(probs, member, 1).tolist() == [
        [True, False, False],
        [False, False, True],
    ]
    assert active_specialists(probs, member, 2).tolist() == [
        [True, True, False],
        [False, True, True],
    ]


def test_tables_3_and_4_count_by_hand():
    labels = torch.tensor([0, 1, 2, 3])
    generalist = torch.log_softmax(torch.eye(4)[[1, 1, 2, 0]] * 5, dim=1)  # right on 1 and 2
    combined = torch.log_softmax(torch.eye(4)[[0, 1, 3, 0]] * 5, dim=1)  # right on 0 and 1
    groups = [[0, 1], [1, 2]]
    # Covered classes {0, 1, 2}: restricted generalist predicts 1, 1, 2 -> 2 of 3 right.
    assert conditional_accuracy(generalist, labels, groups) == pytest.approx(2 / 3)
    rows = {
        row["specialists"]: row for row in gain_by_coverage(generalist, combined, labels, groups)
    }
    assert rows["0"] == {
        "specialists": "0",
        "examples": 1,
        "generalist_correct": 0,
        "change": 0,
        "relative": 0.0,
    }
    assert rows["1"]["examples"] == 2 and rows["1"]["change"] == 0  # class 0 gained, 2 lost
    assert rows["2"]["examples"] == 1 and rows["2"]["change"] == 0
