"""GANs on the one engine: each player's loss reaches only its own parameters; a tiny GAN on
real MNIST ends with a lower Frechet distance than its untrained generator; the GAN
distiller returns the adversarial losses and GAN Compression's terms, and resumes exactly."""

import pytest
import torch
from safetensors.torch import load_file

from kdistill.config import parse_config
from kdistill.data import Batch
from kdistill.engine.checkpoint import load_model
from kdistill.methods import run
from kdistill.methods.common import build_model
from kdistill.methods.gan import adversarial_losses
from kdistill.models.gan import ConditionalDiscriminator, ConditionalGenerator
from kdistill.tasks.generation import GenerationTask
from kdistill.teachers.feature_space import load_feature_space
from tests.conftest import mnist_subset

TRAIN = {
    "batch_size": 32,
    "optimizer": {"name": "adamw", "lr": 0.001, "betas": [0.5, 0.999], "weight_decay": 0.0},
    "schedule": {"name": "constant"},
    "progress": False,
    "threads": 1,
}


def test_each_players_loss_reaches_only_its_own_parameters():
    torch.manual_seed(0)
    generator, discriminator = (
        ConditionalGenerator(channels=2),
        ConditionalDiscriminator(channels=2),
    )
    labels = torch.tensor([0, 1, 2])
    batch = Batch(torch.rand(3, 1, 28, 28), labels, torch.arange(3))
    fake = generator(torch.randn(3, 32), labels)
    losses, outputs = adversarial_losses(
        discriminator, batch.inputs, fake, batch.labels, "non-saturating"
    )
    d_params, g_params = list(discriminator.parameters()), list(generator.parameters())
    d_grads = torch.autograd.grad(losses["discriminator"], d_params + g_params, allow_unused=True)
    assert all(grad is None for grad in d_grads[len(d_params) :])  # nothing reaches G
    assert all(grad is not None for grad in d_grads[: len(d_params)])
    g_grads = torch.autograd.grad(losses["adversarial"], g_params + d_params, allow_unused=True)
    assert all(grad is None for grad in g_grads[len(g_params) :])  # nothing reaches D
    assert sum(grad.abs().sum() for grad in g_grads[: len(g_params)] if grad is not None) > 0
    assert all(parameter.requires_grad for parameter in d_params)  # unfrozen afterwards
    assert outputs.real_scores.shape == (3,) and not outputs.fake_scores.requires_grad


def test_a_discriminator_can_have_its_own_optimizer_settings():
    from kdistill.config import ParameterGroupConfig
    from kdistill.errors import KDistillError
    from kdistill.methods.gan import GanObjective

    generator, discriminator = ConditionalGenerator(channels=2), ConditionalDiscriminator(2)
    settings = ParameterGroupConfig(lr=1e-4, betas=(0.5, 0.9))
    objective = GanObjective(generator, discriminator, discriminator_optimizer=settings)
    default, critic = objective.parameter_groups()
    assert default.parameters == list(generator.parameters())
    assert (critic.name, critic.parameters, critic.settings) == (
        "discriminator",
        list(discriminator.parameters()),
        settings,
    )
    raw = {
        "task": "generation",
        "train": {"optimizer": {"name": "adamw"}},
        "gan": {"classifier": "c.safetensors", "discriminator_optimizer": {"momentum": 0.5}},
    }
    with pytest.raises(KDistillError, match="gan.discriminator_optimizer.momentum needs train"):
        parse_config(raw)


@pytest.fixture(scope="module")
def classifier(mnist, tmp_path_factory):
    """A small kdistill CNN on 3,000 real MNIST images: the feature space of the metrics."""
    folder = tmp_path_factory.mktemp("classifier")
    config = parse_config(
        {
            "output_dir": str(folder),
            "data": {"name": "mnist"},
            "model": {"name": "cnn", "kwargs": {"channels": [8, 16]}},
            "train": {
                "epochs": 2,
                "batch_size": 50,
                "progress": False,
                "threads": 1,
                "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
            },
        }
    )
    run(config, dataset=mnist_subset(mnist, 3000, 1000))
    return folder / "model.safetensors"


def _gan_config(folder, classifier, channels=8, epochs=3, **extra):
    raw = {
        "output_dir": str(folder),
        "task": "generation",
        "data": {"name": "mnist"},
        "model": {"name": "cgan-generator", "kwargs": {"channels": channels}},
        "train": {**TRAIN, "epochs": epochs},
        "gan": {
            "classifier": str(classifier),
            "eval_samples": 500,
            "loss": "hinge",
            "discriminator": {"name": "cgan-discriminator", "kwargs": {"channels": 8}},
        },
        **extra,
    }
    return parse_config(raw)


def test_tiny_gan_on_real_mnist_beats_its_untrained_generator(mnist, classifier, tmp_path):
    data = mnist_subset(mnist, 2000, 1000)
    config = _gan_config(tmp_path / "gan", classifier)
    result = run(config, dataset=data)
    task = GenerationTask().configure(
        load_feature_space(classifier, "classifier", "input"), samples=500
    )
    untrained = task.evaluate(
        build_model(config.model, config.seed), data.test, 500, torch.device("cpu")
    )
    trained = result.final["model"]["test"]
    assert trained["frechet_distance"] < 0.8 * untrained.frechet_distance
    assert trained["accuracy"] > untrained.accuracy
    generator, metadata = load_model(tmp_path / "gan" / "model.safetensors")
    assert metadata["task"] == "generation" and isinstance(generator, ConditionalGenerator)
    assert (tmp_path / "gan" / "discriminator.safetensors").exists()


def test_gan_distillation_runs_every_term_and_resumes_to_the_same_weights(
    mnist, classifier, tmp_path
):
    data = mnist_subset(mnist, 256, 200)
    teacher = run(_gan_config(tmp_path / "teacher", classifier, channels=8, epochs=1), dataset=data)
    distill = {
        "teachers": [{"checkpoint": str(teacher.run_dir / "model.safetensors")}],
        "terms": [
            {"kind": "reconstruction", "weight": 10.0},
            {"kind": "generator_features", "student": "blocks.1", "teacher": "blocks.1"},
        ],
    }

    def config(folder, epochs):
        raw = _gan_config(folder, classifier, channels=2, epochs=epochs, distill=distill)
        raw = raw.model_copy(
            update={
                "gan": raw.gan.model_copy(
                    update={
                        "discriminator_init": str(teacher.run_dir / "discriminator.safetensors")
                    }
                )
            }
        )
        return raw

    whole = run(config(tmp_path / "whole", 2), dataset=data)
    losses = whole.history[-1]["train"]["loss"]
    assert set(losses) == {"reconstruction", "generator_features", "discriminator", "adversarial"}
    run(config(tmp_path / "split", 1), dataset=data)
    run(config(tmp_path / "split", 2), dataset=data, resume=True)
    first, _ = load_model(tmp_path / "whole" / "student.safetensors")
    second, _ = load_model(tmp_path / "split" / "student.safetensors")
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # The discriminator is part of the objective: its checkpointed weights resume too.
    whole_state = load_file(tmp_path / "whole" / "checkpoint.safetensors")
    split_state = load_file(tmp_path / "split" / "checkpoint.safetensors")
    critic = [key for key in whole_state if key.startswith("objective.discriminator.")]
    assert critic and all(torch.equal(whole_state[k], split_state[k]) for k in critic)
