"""FeatureCapture: tensors by module path, input vs output, errors that list paths, cleanup."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.hooks import FeatureCapture, resolve_module


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
        self.head = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x))


def test_sequential_output_and_input_by_path() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    with FeatureCapture(model, [("0", "output"), ("1", "output"), ("2", "input")]) as capture:
        model(x)
        expected_hidden = torch.relu(x @ model[0].weight.T + model[0].bias)
        assert torch.allclose(capture.get("0"), x @ model[0].weight.T + model[0].bias)
        assert torch.allclose(capture.get("1", "output"), expected_hidden)
        # the input of layer 2 is the very tensor layer 1 returned
        assert capture.get("2", "input") is capture.get("1")


def test_nested_module_path() -> None:
    torch.manual_seed(0)
    model = Nested()
    x = torch.randn(4, 2)
    with FeatureCapture(model, [("block.0", "output"), ("block.0", "input")]) as capture:
        model(x)
    linear = model.block[0]
    assert torch.allclose(capture.get("block.0"), x @ linear.weight.T + linear.bias)
    assert capture.get("block.0", "input") is x
    assert resolve_module(model, "block.1") is model.block[1]
    assert resolve_module(model, "") is model


def test_captured_student_tensor_keeps_the_graph() -> None:
    torch.manual_seed(0)
    model = MLP()
    with FeatureCapture(model, [("layers.0", "output")]) as capture:
        model(torch.randn(3, 3))
    capture.get("layers.0").pow(2).sum().backward()
    assert model.layers[0].weight.grad is not None
    assert model.layers[2].weight.grad is None


def test_unknown_path_lists_module_paths() -> None:
    with pytest.raises(KDistillError) as error:
        FeatureCapture(MLP(), [("layers.9", "output")])
    message = str(error.value)
    assert message == (
        "no module 'layers.9' in MLP; module paths are: layers, layers.0, layers.1, layers.2"
    )
    assert "\n" not in message


def test_long_path_lists_are_truncated() -> None:
    model = nn.Sequential(*[nn.Identity() for _ in range(50)])
    with pytest.raises(KDistillError, match=r"0, 1, 2, .*29, \.\.\. \(20 more\)$"):
        resolve_module(model, "nope")


def test_unknown_kind_and_uncaptured_requests_fail_clearly() -> None:
    model = MLP()
    with pytest.raises(KDistillError, match="unknown capture kind 'grad'"):
        FeatureCapture(model, [("layers.0", "grad")])
    capture = FeatureCapture(model, [("layers.0", "output")])
    with pytest.raises(KDistillError, match="is not captured"):
        capture.get("layers.2")
    with pytest.raises(KDistillError, match="produced no tensor output"):
        capture.get("layers.0")


def test_hooks_removed_on_exit_and_clear_forgets() -> None:
    model = MLP()
    capture = FeatureCapture(model, [("layers.0", "output"), ("layers.2", "input")])
    with capture:
        assert capture.is_open
        assert len(model.layers[0]._forward_hooks) == 1
        assert len(model.layers[2]._forward_hooks) == 1
        model(torch.randn(2, 3))
    assert not capture.is_open
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    first = capture.get("layers.0")
    model(torch.randn(2, 3))  # no hooks now: nothing new is captured
    assert capture.get("layers.0") is first
    capture.clear()
    with pytest.raises(KDistillError):
        capture.get("layers.0")


def test_close_after_exception_inside_block() -> None:
    model = MLP()
    with pytest.raises(RuntimeError), FeatureCapture(model, [("layers.1", "output")]):
        raise RuntimeError("boom")
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_tuple_output_keeps_first_element() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.GRU(2, 3, batch_first=True))
    x = torch.randn(1, 4, 2)
    with FeatureCapture(model, [("0", "output")]) as capture:
        sequence, _ = model(x)
    assert capture.get("0") is sequence
