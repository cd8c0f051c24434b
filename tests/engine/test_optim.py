import pytest
import torch

from kdistill.config import OptimizerConfig, ScheduleConfig
from kdistill.engine.optim import build_optimizer, learning_rate_at


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
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for parameter in model.parameters():
            parameter.grad = torch.randn(parameter.shape, generator=generator)
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


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
