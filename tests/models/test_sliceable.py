"""Width-sliceable models (NetAug): the base is the first channels of every layer, wider models
share its weight tensors, and sorting channels keeps the widest model's function."""

import pytest
import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError
from kdistill.models import SliceableCNN, SliceableMLP, create_model, make_sliceable

BASES = [
    ("mlp", {"hidden_sizes": [30, 20]}),
    ("cnn", {"channels": [4, 8, 16]}),
    ("cnn", {"channels": [4, 8], "global_pool": False}),
]


def _pair(name, kwargs, seed=0):
    torch.manual_seed(seed)
    base = create_model(name, **kwargs)
    return base, make_sliceable(base, 2.6)


def _images(count=6):
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("name", "kwargs"), BASES)
def test_the_base_slice_is_the_plain_model_and_exports_as_it(name, kwargs):
    base, sliceable = _pair(name, kwargs)
    base.eval(), sliceable.eval()
    x = _images()
    assert torch.equal(sliceable(x), base(x))
    exported = sliceable.export_base().eval()
    assert type(exported) is type(base)
    assert torch.equal(exported(x), base(x))
    assert sliceable.base_recipe()["name"] == name


@pytest.mark.parametrize(("name", "kwargs"), BASES)
def test_an_augmented_pass_leaves_the_base_outputs_and_statistics_unchanged(name, kwargs):
    _, sliceable = _pair(name, kwargs)
    x = _images()
    sliceable.eval()
    before = sliceable(x)
    buffers = {k: v.clone() for k, v in sliceable.state_dict().items()}
    sliceable.train()
    widths = sliceable.widths_at([2.6] * len(sliceable.base_widths))
    wide = sliceable(x, widths)
    assert wide.shape == before.shape
    sliceable.eval()
    assert torch.equal(sliceable(x), before)
    for key, value in sliceable.state_dict().items():
        assert torch.equal(value, buffers[key]), key  # running statistics untouched


def test_a_wider_model_shares_the_base_weights_and_trains_them():
    _, sliceable = _pair("mlp", {"hidden_sizes": [30, 30]})
    assert isinstance(sliceable, SliceableMLP)
    first = sliceable.linears()[0]
    sliceable(_images(), sliceable.widths_at([1.8, 1.8])).sum().backward()
    assert first.weight.grad is not None
    assert first.weight.grad[:30].abs().sum() > 0  # the base's rows got gradient
    assert first.weight.grad[54:].abs().sum() == 0  # rows beyond width 54 did not


@pytest.mark.parametrize(("name", "kwargs"), BASES)
def test_sorting_channels_preserves_the_widest_models_function(name, kwargs):
    _, sliceable = _pair(name, kwargs)
    x = _images()
    sliceable.train()  # give the batch norms running statistics that differ per channel
    sliceable(x)
    sliceable.eval()
    widest = sliceable.max_widths
    before = sliceable(x, widest)
    sliceable.sort_channels()
    assert torch.allclose(sliceable(x, widest), before, atol=1e-5)


def test_sorting_puts_the_largest_l1_channels_first():
    _, sliceable = _pair("cnn", {"channels": [4, 8]})
    assert isinstance(sliceable, SliceableCNN)
    sliceable.sort_channels()
    for conv, _ in sliceable.blocks():
        norms = conv.weight.abs().flatten(1).sum(dim=1)
        assert torch.all(norms[:-1] >= norms[1:])


def test_mlp_slices_compute_by_hand():
    _, sliceable = _pair("mlp", {"hidden_sizes": [3]})
    x = _images(2)
    first, head = sliceable.linears()
    by_hand = F.linear(
        F.relu(F.linear(x.flatten(1), first.weight[:6], first.bias[:6])), head.weight[:, :6]
    )
    assert torch.allclose(sliceable(x, [6]), by_hand + head.bias)


def test_widths_round_up_and_stop_at_the_largest():
    _, sliceable = _pair("mlp", {"hidden_sizes": [30, 5]})
    assert sliceable.max_widths == [78, 13]
    assert sliceable.widths_at([1.0, 1.8]) == [30, 9]
    with pytest.raises(KDistillError, match="largest width"):
        sliceable.widths_at([3.0, 1.0])


def test_only_the_built_in_models_slice():
    with pytest.raises(KDistillError, match="mlp or cnn"):
        make_sliceable(torch.nn.Linear(3, 2), 2.0)
    with pytest.raises(KDistillError, match="dropout"):
        make_sliceable(create_model("mlp", hidden_sizes=[8], hidden_dropout=0.5), 2.0)
