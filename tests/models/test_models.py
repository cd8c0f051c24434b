import pytest
import torch

from kdistill.errors import KDistillError
from kdistill.models import MLP, count_parameters, create_model


def test_mlp_sizes_match_the_paper():
    teacher = create_model("mlp", hidden_sizes=[1200, 1200])
    student = create_model("mlp", hidden_sizes=[800, 800])
    assert count_parameters(teacher) == 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
    assert count_parameters(student) == 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10


def test_max_norm_caps_each_units_incoming_weights():
    model = MLP(hidden_sizes=[50], max_norm=0.5)
    with torch.no_grad():
        model.layers[1].weight.mul_(100)
        model.layers[1].weight[0].fill_(0.0001)
    small_row = model.layers[1].weight[0].clone()
    model.apply_weight_constraints()
    norms = model.layers[1].weight.norm(dim=1)
    assert norms.max().item() == pytest.approx(0.5, rel=1e-5)
    torch.testing.assert_close(
        model.layers[1].weight[0], small_row
    )  # rows under the cap are untouched


def test_cnn_forward_shape():
    assert create_model("cnn", channels=[8, 16])(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_cnn_without_global_pool_flattens_the_feature_map():
    model = create_model("cnn", channels=[8, 16], global_pool=False, hidden_size=32)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    # The head reads the whole 16 x 7 x 7 map, not 16 averaged channels.
    assert model.classifier[1].in_features == 16 * 7 * 7


def test_user_factory_by_import_path():
    model = create_model("torch.nn:Linear", in_features=4, out_features=2)
    assert isinstance(model, torch.nn.Linear)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("nosuch", {}, "neither a registered name"),
        ("nosuchpackage.mod:f", {}, "cannot import module"),
        ("torch.nn:NoSuchThing", {}, "has no attribute"),
        ("mlp", {"hidden": [3]}, "does not accept these kwargs"),
        ("collections:OrderedDict", {}, "not a torch.nn.Module"),
    ],
)
def test_bad_model_specs_are_one_line_errors(name, kwargs, message):
    with pytest.raises(KDistillError, match=message):
        create_model(name, **kwargs)
