"""Class-conditional GANs on the one engine, and GAN Compression's student objective.

A generator and its discriminator are one :class:`~kdistill.engine.objective.Objective`
trained by the engine's one optimizer with one backward pass per batch. The two players'
losses are kept apart by what each loss can reach, not by a second optimizer: the
discriminator's loss reads the generated images detached (it moves only the discriminator)
and the generator's loss reads the discriminator with its parameters frozen for that pass
(it moves only the generator). One optimizer step then updates both players from the same
batch (simultaneous gradient steps, where DCGAN's reference code alternates them); the engine,
its checkpoints and its resume are unchanged.

GAN Compression (Li et al., CVPR 2020, eq. 4): the student generator minimises
``lambda_cGAN L_cGAN + lambda_recon L_recon + lambda_distill L_distill``; the adversarial
part is this objective's, the other two are loss terms
(:mod:`kdistill.losses.generators`) read through the distiller's feature hooks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from kdistill.config import (
    DistillConfig,
    DistillRunConfig,
    GanConfig,
    ParameterGroupConfig,
    RunConfig,
    TrainRunConfig,
)
from kdistill.data import Batch, DataSet, TrainingData, prepare_data
from kdistill.engine import FitResult, FitSettings, fit, is_main_process
from kdistill.engine.checkpoint import load_model, save_model
from kdistill.engine.objective import Objective, ObjectiveOutput
from kdistill.errors import KDistillError
from kdistill.losses.adversarial import discriminator_loss, generator_loss, gradient_penalty
from kdistill.losses.base import LossTerm, TermContext
from kdistill.methods.common import (
    build_model,
    check_model,
    claim_run_folder,
    dataset_spec,
    derived_seed,
    fit_settings,
)
from kdistill.methods.distill import Distiller
from kdistill.methods.terms import build_terms, check_teacher_encoding
from kdistill.tasks.generation import AdversarialOutputs, GenerationTask, generator_sizes
from kdistill.teachers import Teacher, load_teacher
from kdistill.teachers.feature_space import load_feature_space

__all__ = ["GanDistiller", "GanObjective", "adversarial_losses", "run_gan", "sample_noise"]

DISCRIMINATOR_FILE = "discriminator.safetensors"


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of ``module`` need no gradient inside the block (activations still carry
    gradients through it to its inputs)."""
    flags = [(parameter, parameter.requires_grad) for parameter in module.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def sample_noise(batch: Batch, noise_size: int) -> torch.Tensor:
    """Standard normal noise ``[B, noise_size]``, drawn on the CPU from torch's global
    generator (which every checkpoint saves, so a resumed run draws the same noise)."""
    return torch.randn(len(batch.labels), noise_size).to(batch.inputs.device)


def adversarial_losses(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    condition: torch.Tensor,
    kind: str,
    generator_weight: float = 1.0,
    penalty_weight: float = 0.0,
) -> tuple[dict[str, torch.Tensor], AdversarialOutputs]:
    """``{"discriminator": L_D, "adversarial": weight * L_G}`` for ``real`` samples and
    generated ``fake`` ones, both scored as ``discriminator(sample, condition)`` (class ids for
    a conditional GAN, the image for a segmentation map). ``L_D`` reaches only the
    discriminator, ``L_G`` only the generator (see the module docstring). With
    ``penalty_weight`` > 0, also ``"gradient_penalty"``: WGAN-GP's penalty times that weight,
    at interpolates of the detached samples (it too reaches only the discriminator)."""
    real_scores = discriminator(real, condition)
    fake_scores = discriminator(fake.detach(), condition)
    losses = {"discriminator": discriminator_loss(real_scores, fake_scores, kind)}
    if penalty_weight != 0:
        losses["gradient_penalty"] = penalty_weight * gradient_penalty(
            lambda mixed: discriminator(mixed, condition), real, fake
        )
    if generator_weight != 0:
        with frozen(discriminator):
            losses["adversarial"] = generator_weight * generator_loss(
                discriminator(fake, condition), kind
            )
    return losses, AdversarialOutputs(real_scores.detach(), fake_scores.detach())


class GanObjective(Objective):
    """A generator and its discriminator trained together (``kdistill train``, task
    generation): the teacher, or a student trained from scratch as a GAN."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: str = "non-saturating",
        name: str = "model",
        discriminator_optimizer: ParameterGroupConfig | None = None,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.noise_size, _ = generator_sizes(generator)
        self.discriminator = discriminator
        if discriminator_optimizer is not None:
            self.group_settings = {"discriminator": discriminator_optimizer}
        self.loss = loss
        self.name = name

    def forward(self, batch: Batch) -> ObjectiveOutput:
        fake = self.generator(sample_noise(batch, self.noise_size), batch.labels)
        losses, outputs = adversarial_losses(
            self.discriminator, batch.inputs, fake, batch.labels, self.loss
        )
        return ObjectiveOutput(losses, outputs)

    def evaluation_models(self) -> dict[str, nn.Module]:
        return {self.name: self.generator}


class GanDistiller(Distiller):
    """GAN Compression's student objective: the adversarial losses of :class:`GanObjective`
    (the generator's weighted by ``adversarial_weight``) plus the distiller's terms, which see
    the student's images as ``student_logits`` and the teacher's for the same noise and class
    as ``teacher_member_logits`` (one member), and the features they ask for by module path."""

    def __init__(
        self,
        student: nn.Module,
        teacher: Teacher,
        terms: Sequence[LossTerm],
        discriminator: nn.Module,
        loss: str = "non-saturating",
        adversarial_weight: float = 1.0,
        discriminator_optimizer: ParameterGroupConfig | None = None,
    ) -> None:
        super().__init__(student, teacher, terms)
        if discriminator_optimizer is not None:
            self.group_settings = {"discriminator": discriminator_optimizer}
        if len(teacher.members) != 1:
            raise KDistillError(
                f"GAN distillation takes one teacher generator, got {len(teacher.members)}: "
                "list one entry in distill.teachers"
            )
        self.noise_size, _ = generator_sizes(student, "student generator")
        self.discriminator = discriminator
        self.loss = loss
        self.adversarial_weight = adversarial_weight

    def forward(self, batch: Batch) -> ObjectiveOutput:
        noise = sample_noise(batch, self.noise_size)
        stack, captures = self._captures()
        teacher = self.teacher_view
        assert teacher is not None
        with stack:
            images = self.student(noise, batch.labels)
            with torch.no_grad():
                teacher_images = teacher(noise, batch.labels)
            features = {
                request: captures[request.side].get(request.path, request.kind)  # type: ignore[attr-defined]
                for request in self.requests
            }
        context = TermContext(
            inputs=noise,
            labels=batch.labels,
            student_logits=images,
            teacher_member_logits=teacher_images[None],
            student=self.student,
            teacher=teacher,
            features=features,
        )
        losses = self.term_losses(context)
        adversarial, outputs = adversarial_losses(
            self.discriminator,
            batch.inputs,
            images,
            batch.labels,
            self.loss,
            self.adversarial_weight,
        )
        losses.update(adversarial)
        return ObjectiveOutput(losses, outputs)


# --- From a config: task generation behind ``kdistill train`` and ``kdistill distill`` ------


def generation_terms(distill: DistillConfig) -> list[LossTerm]:
    """The terms of ``distill.terms`` alone: a generator has no logits, so the soft- and
    hard-target terms of a classification distill section do not apply."""
    terms = build_terms(
        temperature=1.0,
        use_labels=False,
        extra=[term.model_dump() for term in distill.terms],
    )[1:]  # drop the soft-target term build_terms always puts first
    if not terms:
        raise KDistillError(
            "GAN distillation needs distill.terms, e.g. [{kind: reconstruction, weight: 10}]; "
            "a student without terms is kdistill train with task generation"
        )
    return terms


def _discriminator(gan: GanConfig, seed: int) -> tuple[nn.Module, dict]:
    if gan.discriminator_init is not None:
        model, metadata = load_model(gan.discriminator_init)
        return model, metadata.get("recipe") or gan.discriminator.model_dump()
    return build_model(gan.discriminator, derived_seed(seed, "discriminator")), (
        gan.discriminator.model_dump()
    )


def _setup(config: RunConfig, gan: GanConfig, data: TrainingData) -> FitSettings:
    if not data.encoding.is_plain:
        raise KDistillError(
            "task generation makes images in [0, 1] (pixels / 255): remove data.normalize and "
            "data.input_shape"
        )
    settings = fit_settings(config, Path(config.output_dir))
    task = settings.task
    if not isinstance(task, GenerationTask):
        raise KDistillError("a gan section needs task: generation")
    space = load_feature_space(
        gan.classifier, gan.feature_layer, gan.feature_kind, dataset_spec(config.data.name)
    )
    task.configure(space, gan.eval_samples, gan.eval_seed, gan.nearest_k)
    return settings


def run_gan(
    config: TrainRunConfig | DistillRunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    dataset: DataSet | None = None,
) -> FitResult:
    """Train a conditional GAN (a train config) or a student generator by GAN Compression (a
    distill config), then save the discriminator beside the generator's file."""
    gan = config.gan
    if gan is None:
        raise KDistillError("task generation needs a gan section (see configs/gan-compression/)")
    data = prepare_data(config.data, config.seed, dataset)
    settings = _setup(config, gan, data)
    generator = build_model(config.model, config.seed)
    check_model(settings.task, generator, data, f"generator {config.model.name}")
    discriminator, discriminator_recipe = _discriminator(gan, config.seed)
    objective: Objective
    if isinstance(config, DistillRunConfig):
        teacher = load_teacher(config.distill.teachers)
        check_teacher_encoding(teacher, data, [t.checkpoint for t in config.distill.teachers])
        settings.task.probe(teacher.members[0], data.train, "teacher generator")
        name = "student"
        objective = GanDistiller(
            generator,
            teacher,
            generation_terms(config.distill),
            discriminator,
            gan.loss,
            gan.adversarial_weight,
            gan.discriminator_optimizer,
        )
    else:
        name = "model"
        objective = GanObjective(
            generator, discriminator, gan.loss, name, gan.discriminator_optimizer
        )
    with claim_run_folder(
        config, resume=resume, overwrite=overwrite, may_raise=("train.epochs",)
    ) as run_dir:
        settings.recipes = {name: config.model.model_dump()}
        settings.description = f"gan {run_dir.name}"
        result = fit(objective, data, settings, resume=resume)
        if is_main_process():
            save_model(
                run_dir / DISCRIMINATOR_FILE,
                discriminator,
                discriminator_recipe,
                task="discriminator",
                seed=config.seed,
            )
    return result
