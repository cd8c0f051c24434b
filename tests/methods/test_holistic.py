"""Holistic distillation (Liu et al. 2019) on the one engine: each player's loss reaches only
its own parameters; a discriminator that does not fit the maps and images, or a holistic
section on another task, is refused in one line; a tiny run on real canvases trains every
loss and resumes to the same student and discriminator."""

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kdistill.config import parse_config
from kdistill.data import Batch
from kdistill.data.canvases import CanvasSettings, canvas_dataset, load_canvases
from kdistill.errors import KDistillError
from kdistill.losses.logits import HardTargetLoss
from kdistill.methods import distill, train
from kdistill.methods.holistic import HolisticDistiller, check_discriminator, soft_map
from kdistill.models import create_model
from kdistill.teachers import Teacher

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _segnet(width: int) -> torch.nn.Module:
    return create_model("segnet", channels=[width] * 4, decoder_channels=width, num_classes=3)


def test_each_players_loss_reaches_only_its_own_parameters():
    torch.manual_seed(0)
    student, teacher = _segnet(2), Teacher([_segnet(4)])
    discriminator = create_model("seg-discriminator", num_classes=3, channels=2)
    objective = HolisticDistiller(student, teacher, [HardTargetLoss(1.0)], discriminator)
    batch = Batch(torch.rand(2, 1, 16, 16), torch.randint(0, 3, (2, 16, 16)), torch.arange(2))
    losses = objective(batch).losses
    assert set(losses) == {"hard_targets", "discriminator", "gradient_penalty", "holistic"}
    d_params, s_params = list(discriminator.parameters()), list(student.parameters())
    for name in ("discriminator", "gradient_penalty"):
        grads = torch.autograd.grad(losses[name], d_params + s_params, allow_unused=True)
        assert all(grad is None for grad in grads[len(d_params) :]), name  # student untouched
        assert any(grad is not None and grad.abs().sum() > 0 for grad in grads[: len(d_params)])
    grads = torch.autograd.grad(losses["holistic"], s_params + d_params, allow_unused=True)
    assert all(grad is None for grad in grads[len(s_params) :])  # discriminator untouched
    assert sum(grad.abs().sum() for grad in grads[: len(s_params)] if grad is not None) > 0
    assert all(parameter.requires_grad for parameter in d_params)  # unfrozen afterwards
    assert all(not parameter.requires_grad for parameter in teacher.parameters())


def test_a_discriminator_that_does_not_fit_is_refused_naming_the_key():
    discriminator = create_model("seg-discriminator", num_classes=20, in_channels=1)
    image = torch.rand(1, 1, 16, 16)
    with pytest.raises(KDistillError) as caught:
        check_discriminator(discriminator, 21, image, "distill.holistic.discriminator")
    message = str(caught.value)
    assert "\n" not in message and "21-class map" in message
    assert "set distill.holistic.discriminator.kwargs to {num_classes: 21, in_channels: 1}" in (
        message
    )
    check_discriminator(create_model("seg-discriminator", num_classes=21), 21, image, "key")


def test_a_holistic_section_needs_the_segmentation_task():
    raw = {
        "distill": {"teachers": [{"checkpoint": "t.safetensors"}], "holistic": {}},
    }
    with pytest.raises(KDistillError, match="distill.holistic needs task: segmentation"):
        parse_config(raw)
    with pytest.raises(KDistillError, match="distill.cache_teacher_logits to auto or never"):
        parse_config(
            {
                **raw,
                "task": "segmentation",
                "distill": {**raw["distill"], "cache_teacher_logits": "always"},
            }
        )
    with pytest.raises(KDistillError, match="discriminator_optimizer.betas needs train.optim"):
        parse_config(
            {
                **raw,
                "task": "segmentation",
                "distill": {
                    **raw["distill"],
                    "holistic": {"discriminator_optimizer": {"betas": [0.5, 0.9]}},
                },
            }
        )
    config = parse_config({**raw, "task": "segmentation"})
    holistic = config.distill.holistic
    assert (holistic.weight, holistic.gradient_penalty, holistic.loss) == (
        0.1,
        10.0,
        "wasserstein",
    )


@pytest.fixture(scope="module")
def canvases(mnist, tmp_path_factory):
    from kdistill.data.loaders import load_fashion_mnist

    train_set, test_set = load_canvases(
        mnist,
        load_fashion_mnist(),
        sizes=(200, 50),
        settings=CanvasSettings(size=32, max_objects=2, min_scale=12, max_scale=20),
        cache_dir=tmp_path_factory.mktemp("canvases"),
    )
    return canvas_dataset("small-canvases", train_set, test_set, "masks")


def _config(folder: Path, channels: list[int], epochs: int, extra=None):
    return parse_config(
        {
            "output_dir": str(folder),
            "task": "segmentation",
            "data": {"name": "canvases-seg"},
            "model": {
                "name": "segnet",
                "kwargs": {"channels": channels, "decoder_channels": channels[-1]},
            },
            "train": {
                "epochs": epochs,
                "batch_size": 50,
                "eval_batch_size": 50,
                "optimizer": {"name": "adamw", "lr": 0.01},
                "schedule": {"name": "constant"},
                "progress": False,
                "threads": 1,
            },
            **(extra or {}),
        }
    )


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian package dataset-fashion-mnist")
def test_holistic_distillation_trains_and_resumes_to_the_same_weights(tmp_path, canvases):
    train(_config(tmp_path / "teacher", [4, 4, 8, 8], 1), dataset=canvases)
    section = {
        "distill": {
            "teachers": [{"checkpoint": str(tmp_path / "teacher" / "model.safetensors")}],
            "soft_target_weight": 0,
            "hard_target_weight": 1.0,
            "terms": [],  # the bench's "student + holistic" cell: no term reads the teacher
            "holistic": {
                "discriminator": {"name": "seg-discriminator", "kwargs": {"channels": 4}},
                # WGAN-GP's critic settings: its own group of the one optimizer
                "discriminator_optimizer": {"lr": 0.005, "betas": [0.5, 0.9]},
            },
        }
    }

    def student(folder, epochs):
        return _config(folder, [2, 2, 4, 4], epochs, section)

    whole = distill(student(tmp_path / "whole", 2), dataset=canvases)
    losses = whole.history[-1]["train"]["loss"]
    assert set(losses) == {
        "hard_targets",
        "discriminator",
        "gradient_penalty",
        "holistic",
    }
    assert all(torch.isfinite(torch.tensor(value)) for value in losses.values())
    # The critic learnt something: its penalty left 10 (the value at a flat critic, whose
    # input gradient is 0) and it tells the teacher's maps from the student's (l_ho < 0).
    assert losses["gradient_penalty"] < 9.0 and losses["discriminator"] < 0
    first_epoch = whole.history[0]["train"]["loss"]
    assert losses["hard_targets"] < first_epoch["hard_targets"]  # the student learns too

    # The critic's group steps at half the student's scheduled rate, with its own betas.
    saved = json.loads((tmp_path / "whole" / "checkpoint.json").read_text())
    default, critic = saved["optimizer"]["param_groups"]
    assert (default["name"], critic["name"]) == ("default", "discriminator")
    assert (default["lr"], critic["lr"]) == (0.01, 0.005)
    assert (tuple(default["betas"]), tuple(critic["betas"])) == ((0.9, 0.999), (0.5, 0.9))
    assert len(critic["params"]) == len(list(create_model("seg-discriminator").parameters()))

    distill(student(tmp_path / "split", 1), dataset=canvases)
    distill(student(tmp_path / "split", 2), dataset=canvases, resume=True)
    first = load_file(tmp_path / "whole" / "checkpoint.safetensors")
    second = load_file(tmp_path / "split" / "checkpoint.safetensors")
    critic = [key for key in first if key.startswith("objective.discriminator.")]
    assert len(critic) == len(dict(create_model("seg-discriminator").named_parameters()))
    for key in critic + [key for key in first if key.startswith("objective.student.")]:
        assert torch.equal(first[key], second[key]), key


def test_the_teachers_soft_map_is_the_real_sample():
    """A student identical to its teacher makes maps the critic cannot tell apart: l_ho is
    exactly 0; the real sample is the members' mean class probabilities (soft_map)."""
    torch.manual_seed(0)
    teacher_model = _segnet(2).eval()
    student = copy.deepcopy(teacher_model).eval()
    discriminator = create_model("seg-discriminator", num_classes=3, channels=2)
    objective = HolisticDistiller(
        student, Teacher([teacher_model]), [HardTargetLoss(1.0)], discriminator
    )
    batch = Batch(torch.rand(2, 1, 16, 16), torch.randint(0, 3, (2, 16, 16)), torch.arange(2))
    assert objective(batch).losses["discriminator"].item() == 0.0
    logits = torch.tensor([[[[0.0]], [[0.0]]], [[[2.0]], [[0.0]]]])[:, None]  # [M=2, B=1, 2, 1, 1]
    expected = (torch.tensor([0.5, 0.5]) + torch.tensor([2.0, 0.0]).softmax(0)) / 2
    assert torch.allclose(soft_map(logits)[0, :, 0, 0], expected)
