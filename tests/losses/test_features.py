"""FitNet hints (Romero et al. 2015, eq. 3) and NST (Huang & Wang 2017) on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest
from kdistill.losses.features import (
    HintLoss,
    NeuronSelectivityLoss,
    default_gaussian_bandwidth,
    neuron_selectivity_mmd,
    selectivity_maps,
)

# --- FitNet --------------------------------------------------------------------------------


def test_hint_hand_computed_with_known_linear_regressor(make_context) -> None:
    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]], dtype=torch.float64)
    teacher = torch.tensor([[1.0, 0.0, 4.0], [2.0, 2.0, 0.0]], dtype=torch.float64)
    context = make_context(student_features={"g": student}, teacher_features={"h": teacher})
    term = HintLoss(student="g", teacher="h")
    term.prepare(context)
    assert isinstance(term.regressor, nn.Linear)
    with torch.no_grad():
        term.regressor.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        term.regressor.bias.zero_()
    # r(v) = [v1, v2, v1 + v2] -> [[1, 2, 3], [0, -1, -1]]
    # example 1: (0, -2, 1) -> 1/2 * 5 ; example 2: (2, 3, 1) -> 1/2 * 14 ; mean = 19/4
    assert term(context).item() == pytest.approx(19 / 4)
    term.reduction = "mean"
    assert term(context).item() == pytest.approx(19 / 4 / 3)


def test_hint_conv_regressor_resizes_to_the_hint(make_context) -> None:
    # constant student maps stay constant after a 1x1 conv and bilinear resizing
    student = torch.zeros(2, 2, 2, 2, dtype=torch.float64)
    student[:, 0] = 1.0
    student[:, 1] = 2.0
    teacher = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    context = make_context(student_features={"s": student}, teacher_features={"t": teacher})
    term = HintLoss("s", "t")
    term.prepare(context)
    assert isinstance(term.regressor, nn.Conv2d)
    assert term.regressor.weight.shape == (3, 2, 1, 1)
    with torch.no_grad():
        term.regressor.weight.copy_(
            torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])[..., None, None]
        )
        term.regressor.bias.zero_()
    # regressed maps are 1, 2, 3 everywhere on 4x4: 1/2 * 16 * (1 + 4 + 9) = 112 per example
    assert term(context).item() == pytest.approx(112.0)


def test_hint_zero_when_regressed_student_equals_teacher(make_context) -> None:
    torch.manual_seed(0)
    feature = torch.randn(3, 4, 5, dtype=torch.float64)  # [batch, tokens, features]
    context = make_context(student_features={"s": feature}, teacher_features={"t": feature.clone()})
    term = HintLoss("s", "t")
    term.prepare(context)
    with torch.no_grad():
        term.regressor.weight.copy_(torch.eye(5))
        term.regressor.bias.zero_()
    assert term(context).item() == pytest.approx(0.0, abs=1e-14)


def test_hint_gradcheck_through_regressor(make_context) -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    student = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    term = HintLoss("s", "t", reduction="mean")

    def loss(s: torch.Tensor) -> torch.Tensor:
        return term(make_context(student_features={"s": s}, teacher_features={"t": teacher}))

    loss(student)  # builds the regressor
    assert torch.autograd.gradcheck(loss, (student,))
    loss(student).backward()
    assert all(p.grad is not None for p in term.parameters())


def test_hint_reads_and_errors(make_context) -> None:
    term = HintLoss(student="layers.1", teacher="layers.3")
    assert term.name == "fitnet" and term.needs_live_teacher
    assert term.reads() == [
        FeatureRequest("student", "layers.1"),
        FeatureRequest("teacher", "layers.3"),
    ]
    assert list(term.parameters()) == []  # the regressor is built on the first batch
    with pytest.raises(KDistillError, match="was not captured"):
        term(make_context())
    with pytest.raises(KDistillError, match="reduction must be one of sum, mean"):
        HintLoss("a", "b", reduction="max")
    with pytest.raises(KDistillError, match="differ in rank"):
        HintLoss("s", "t")(
            make_context(
                student_features={"s": torch.zeros(2, 3)},
                teacher_features={"t": torch.zeros(2, 3, 4, 4)},
            )
        )


# --- NST -----------------------------------------------------------------------------------


def _numpy_mmd(student: np.ndarray, teacher: np.ndarray, kernel) -> float:
    """MMD^2 of NST per example by explicit sums over channel pairs, averaged over the batch."""
    values = []
    for s_example, t_example in zip(student, teacher, strict=True):
        s = [m / np.linalg.norm(m) for m in s_example.reshape(s_example.shape[0], -1)]
        t = [m / np.linalg.norm(m) for m in t_example.reshape(t_example.shape[0], -1)]
        tt = sum(kernel(a, b) for a in t for b in t) / len(t) ** 2
        ss = sum(kernel(a, b) for a in s for b in s) / len(s) ** 2
        st = sum(kernel(a, b) for a in s for b in t) / (len(s) * len(t))
        values.append(tt + ss - 2 * st)
    return float(np.mean(values))


def test_nst_hand_computed_orthogonal_maps() -> None:
    # one channel each, two positions: s = (1, 0), t = (0, 1) after normalisation
    student = torch.tensor([[[[3.0, 0.0]]]], dtype=torch.float64)
    teacher = torch.tensor([[[[0.0, 0.5]]]], dtype=torch.float64)
    assert neuron_selectivity_mmd(student, teacher, "linear").item() == pytest.approx(2.0)
    assert neuron_selectivity_mmd(student, teacher, "polynomial").item() == pytest.approx(2.0)
    # Gaussian, sigma^2 = 1: k(s, t) = exp(-2 / 2)
    gaussian = neuron_selectivity_mmd(student, teacher, "gaussian", sigma_squared=1.0)
    assert gaussian.item() == pytest.approx(2 - 2 * math.exp(-1))


@pytest.mark.parametrize("kernel", ["linear", "polynomial", "gaussian"])
def test_nst_matches_numpy_sums(kernel: str) -> None:
    torch.manual_seed(0)
    student = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    teacher = torch.randn(2, 5, 2, 2, dtype=torch.float64)  # channel counts may differ
    sigma_squared = 0.7
    kernels = {
        "linear": lambda a, b: a @ b,
        "polynomial": lambda a, b: (a @ b) ** 2,
        "gaussian": lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma_squared)),
    }
    expected = _numpy_mmd(student.numpy(), teacher.numpy(), kernels[kernel])
    value = neuron_selectivity_mmd(student, teacher, kernel, sigma_squared=sigma_squared)
    assert value.item() == pytest.approx(expected, rel=1e-10)


def test_nst_default_gaussian_bandwidth_is_mean_squared_pair_distance() -> None:
    torch.manual_seed(0)
    student = torch.randn(1, 2, 3, dtype=torch.float64)
    teacher = torch.randn(1, 3, 3, dtype=torch.float64)
    maps = np.concatenate(
        [selectivity_maps(student)[0].numpy(), selectivity_maps(teacher)[0].numpy()]
    )
    pairs = [np.sum((maps[i] - maps[j]) ** 2) for i in range(5) for j in range(5) if i != j]
    bandwidth = default_gaussian_bandwidth(selectivity_maps(student), selectivity_maps(teacher))
    assert bandwidth.item() == pytest.approx(np.mean(pairs))


@pytest.mark.parametrize("kernel", ["linear", "polynomial", "gaussian"])
def test_nst_zero_for_same_channel_distribution(kernel: str) -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    assert neuron_selectivity_mmd(teacher.clone(), teacher, kernel).item() == pytest.approx(
        0.0, abs=1e-12
    )
    # NST compares sets of normalised maps: channel order and per-map scale do not matter
    shuffled = 2.5 * teacher[:, [2, 0, 3, 1]]
    assert neuron_selectivity_mmd(shuffled, teacher, kernel).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "polynomial", "gaussian"])
def test_nst_gradcheck(kernel: str) -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    student = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s: neuron_selectivity_mmd(s, teacher, kernel), (student,)
    )


def test_nst_term_resizes_student_maps_and_checks_shapes(make_context) -> None:
    term = NeuronSelectivityLoss(student="s", teacher="t")
    assert term.name == "nst" and term.kernel == "polynomial" and list(term.parameters()) == []
    # constant maps of any size normalise to the same uniform map: MMD^2 = 0 after resizing
    context = make_context(
        student_features={"s": torch.ones(2, 3, 2, 2, dtype=torch.float64)},
        teacher_features={"t": torch.full((2, 5, 4, 4), 3.0, dtype=torch.float64)},
    )
    assert term(context).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(KDistillError, match=r"needs convolutional maps"):
        term(
            make_context(
                student_features={"s": torch.ones(2, 3)}, teacher_features={"t": torch.ones(2, 3)}
            )
        )
    with pytest.raises(KDistillError, match="kernel must be one of linear, polynomial, gaussian"):
        NeuronSelectivityLoss("s", "t", kernel="rbf")
