import pytest
import torch

from kdistill.config import OptimizerConfig, ParameterGroupConfig, ScheduleConfig
from kdistill.engine.objective import Objective
from kdistill.engine.optim import ParameterGroup, build_optimizer, learning_rate_at


def test_cosine_with_warmup():
    config = ScheduleConfig(name="cosine", warmup_epochs=1)
    assert learning_rate_at(0, 100, 10, 1.0, config) == pytest.approx(0.1)
    assert learning_rate_at(9, 100, 10, 1.0, config) == pytest.approx(1.0)
    assert learning_rate_at(10, 100, 10, 1.0, config) == pytest.approx(1.0)
    assert learning_rate_at(55, 100, 10, 1.0, config) == pytest.approx(0.5)
    assert learning_rate_at(100, 100, 10, 1.0, config) == pytest.approx(0.0, abs=1e-12)


def test_step_and_exponential_and_constant():
    assert (
        learning_rate_at(25, 100, 10, 1.0, ScheduleConfig(name="step", step_epochs=2, gamma=0.5))
        == 0.5
    )
    assert learning_rate_at(
        20, 100, 10, 1.0, ScheduleConfig(name="exponential", gamma=0.5)
    ) == pytest.approx(0.25)
    assert learning_rate_at(77, 100, 10, 0.3, ScheduleConfig(name="constant")) == 0.3


def _weights_after_steps(optimizer_config, reference_kwargs=None, steps=15):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    if reference_kwargs is None:
        optimizer = build_optimizer(model.parameters(), optimizer_config)
    else:  # torch's own per-parameter loop, the CPU default
        cls = torch.optim.AdamW if optimizer_config.name == "adamw" else torch.optim.SGD
        optimizer = cls(model.parameters(), foreach=False, **reference_kwargs)
    return _step(model, optimizer, steps)


def test_multi_tensor_step_gives_the_per_parameter_loops_weights_bit_for_bit():
    sgd = OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    reference = {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
    assert build_optimizer([torch.nn.Parameter(torch.ones(2))], sgd).defaults["foreach"]
    assert torch.equal(_weights_after_steps(sgd), _weights_after_steps(sgd, reference))
    adamw = OptimizerConfig(name="adamw", lr=1e-3, weight_decay=0.01)
    reference = {"lr": 1e-3, "weight_decay": 0.01, "betas": (0.9, 0.999)}
    assert torch.equal(_weights_after_steps(adamw), _weights_after_steps(adamw, reference))


def test_fused_step_is_opt_in_and_agrees_to_rounding():
    sgd = OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    fused = sgd.model_copy(update={"fused": True})
    assert build_optimizer([torch.nn.Parameter(torch.ones(2))], fused).defaults["fused"]
    torch.testing.assert_close(
        _weights_after_steps(fused), _weights_after_steps(sgd), rtol=1e-5, atol=1e-6
    )


def _two_part_model():
    torch.manual_seed(0)
    return torch.nn.ModuleDict(
        {"body": torch.nn.Linear(12, 16), "critic": torch.nn.Linear(16, 1, bias=False)}
    )


def _step(model, optimizer, steps=10):
    """``steps`` optimizer steps on seeded random gradients; the weights, flat."""
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for parameter in model.parameters():
            parameter.grad = torch.randn(parameter.shape, generator=generator)
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize(
    ("run", "critic", "by_hand"),
    [
        (
            OptimizerConfig(name="adamw", lr=3e-3, weight_decay=1e-4),
            ParameterGroupConfig(lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0),
            {"lr": 1e-4, "betas": (0.5, 0.9), "weight_decay": 0.0},
        ),
        (
            OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True),
            ParameterGroupConfig(lr=0.02, momentum=0.0),
            {"lr": 0.02, "momentum": 0.0, "nesterov": False},
        ),
    ],
)
def test_a_parameter_group_steps_with_its_own_settings(run, critic, by_hand):
    model = _two_part_model()
    groups = [
        ParameterGroup("default", list(model["body"].parameters())),
        ParameterGroup("critic", list(model["critic"].parameters()), critic),
    ]
    optimizer = build_optimizer(groups, run)
    assert [group["name"] for group in optimizer.param_groups] == ["default", "critic"]
    assert optimizer.param_groups[1]["lr_scale"] == pytest.approx(critic.lr / run.lr)
    assert optimizer.param_groups[0]["lr_scale"] == 1.0
    ours = _step(model, optimizer)

    reference_model = _two_part_model()
    cls = torch.optim.AdamW if run.name == "adamw" else torch.optim.SGD
    body = {"lr": run.lr, "weight_decay": run.weight_decay}
    body |= {"betas": run.betas} if run.name == "adamw" else {"momentum": 0.9, "nesterov": True}
    reference = cls(
        [
            {"params": list(reference_model["body"].parameters()), **body},
            {"params": list(reference_model["critic"].parameters()), **by_hand},
        ],
        foreach=True,
    )
    assert torch.equal(ours, _step(reference_model, reference))


def test_an_objectives_groups_take_the_named_submodules_and_leave_frozen_ones_out():
    class Pair(Objective):
        def __init__(self):
            super().__init__()
            self.student = torch.nn.Linear(3, 3)
            self.teacher = torch.nn.Linear(3, 3).requires_grad_(False)
            self.discriminator = torch.nn.Linear(3, 1)

    pair = Pair()
    assert [(g.name, len(g.parameters)) for g in pair.parameter_groups()] == [("default", 4)]
    settings = ParameterGroupConfig(lr=1e-4)
    pair.group_settings = {"discriminator": settings}
    default, critic = pair.parameter_groups()
    assert default.parameters == list(pair.student.parameters())
    assert critic.parameters == list(pair.discriminator.parameters())
    assert (critic.name, critic.settings) == ("discriminator", settings)
