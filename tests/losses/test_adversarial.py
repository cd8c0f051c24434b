"""The Wasserstein losses and WGAN-GP's gradient penalty against hand computations."""

import math

import pytest
import torch

from kdistill.losses.adversarial import discriminator_loss, generator_loss, gradient_penalty


def test_wasserstein_losses_are_the_score_means():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    # critic: E[D(fake)] - E[D(real)] = -1 - 2; generator: -E[D(fake)] = 1
    assert discriminator_loss(real, fake, "wasserstein").item() == pytest.approx(-3.0)
    assert generator_loss(fake, "wasserstein").item() == pytest.approx(1.0)


def test_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    """D(x) = w . x has the input gradient w at every interpolate, so the penalty is exactly
    (||w|| - 1)^2 whatever the samples and mixing, and its gradient in w is
    2 (||w|| - 1) w / ||w||."""
    torch.manual_seed(0)
    weight = torch.tensor([[[1.0, 2.0], [2.0, 0.0]]], dtype=torch.float64, requires_grad=True)
    real = torch.rand(4, 1, 2, 2, dtype=torch.float64)
    fake = torch.rand(4, 1, 2, 2, dtype=torch.float64)

    def critic(x):
        return (x * weight).flatten(1).sum(dim=1)

    penalty = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx((3.0 - 1.0) ** 2)  # ||w|| = sqrt(1 + 4 + 4) = 3
    (grad,) = torch.autograd.grad(penalty, weight)
    assert torch.allclose(grad, 2 * (3.0 - 1.0) * weight.detach() / 3.0)


def test_penalty_is_taken_at_the_interpolates_between_real_and_fake():
    """D(x) = ||x||^2 / 2 has the input gradient x, so with mixing eps the penalty is
    mean((||eps real + (1 - eps) fake|| - 1)^2), computed here by hand for two examples."""
    real = torch.tensor([[3.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    fake = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    mixing = torch.tensor([0.5, 0.25], dtype=torch.float64)

    def critic(x):
        return x.pow(2).sum(dim=1) / 2

    # interpolates [2, 0] (norm 2) and [0, 0.5] (norm 0.5)
    expected = ((2.0 - 1) ** 2 + (0.5 - 1) ** 2) / 2
    assert gradient_penalty(critic, real, fake, mixing).item() == pytest.approx(expected)


def test_penalty_moves_only_the_critic_and_works_under_no_grad():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    generator = torch.nn.Linear(2, 3)
    fake = generator(torch.randn(5, 2))
    with torch.no_grad():  # the engine's dry run calls the objective without gradients
        quiet = gradient_penalty(lambda x: critic(x).squeeze(1), torch.randn(5, 3), fake)
    assert math.isfinite(quiet.item())
    penalty = gradient_penalty(lambda x: critic(x).squeeze(1), torch.randn(5, 3), fake)
    grads = torch.autograd.grad(
        penalty, [*critic.parameters(), *generator.parameters()], allow_unused=True
    )
    # second order: the critic's weights and first bias shape its input gradient (the last
    # bias does not, so it gets none)
    assert all(grad is not None for grad in grads[:3]) and grads[3] is None
    assert all(grad is None for grad in grads[4:])  # the samples are detached
