"""Network Augmentation: train a tiny model inside wider copies of itself.

Reference: H. Cai, C. Gan, J. Lin, S. Han, "Network Augmentation for Tiny Deep Learning",
ICLR 2022. Tiny models underfit; regularisation (dropout, data augmentation) makes that worse.
NetAug does the opposite: each step it trains the base model *and* one augmented model, a
wider model that contains the base and shares its weights (section 3.1, eq. 2):

    loss = L(W_base) + alpha * L([W_base, W_aug])

As the paper's code does it: the base model's forward/backward, then one augmented model
sampled per step (each hidden layer's width multiplier drawn from ``width_multipliers``),
one optimizer step on the summed gradients. Here the engine back-propagates the sum of the two
losses once, which gives the same gradients as two backward passes (gradients add), holding
both graphs at once. At each augmented epoch's start (but the first) every layer's channels are
sorted by the L1 norm of their weights, so the base (the first channels) holds the most important ones;
augmentation stops after ``stop_fraction`` of the epochs (the paper trains its last epochs on
the base alone); at the end batch-norm statistics are re-estimated on training batches for the
base alone. Only the base is evaluated and saved, as the plain ``mlp`` or ``cnn`` it is.

With ``netaug.distill`` the loss ``L`` is the distillation loss of ``kdistill distill``
(soft targets from a teacher plus the hard labels), applied to the base and the augmented
model alike: NetAug + KD, as in the paper's table 4.

Differences from the paper, on purpose: the search space is width only (an MLP has no
expand ratio or kernel size); the augmented model's batch norm uses its batch's statistics
and leaves the running ones to the base.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from kdistill.config import NetAugConfig, NetAugRunConfig
from kdistill.data import Batch, DataSet, prepare_data
from kdistill.engine import FitResult, fit, resolve_device
from kdistill.engine.objective import Objective, ObjectiveOutput
from kdistill.errors import KDistillError
from kdistill.files import cache_dir
from kdistill.losses.base import LossTerm, TermContext
from kdistill.losses.logits import HardTargetLoss
from kdistill.methods.common import build_model, check_model, fit_settings, write_run_config
from kdistill.methods.terms import check_teacher_encoding, terms_from_config, use_cached_logits
from kdistill.models import SliceableModel, make_sliceable
from kdistill.tasks import BatchSource
from kdistill.teachers import (
    Teacher,
    cached_logits_of_batch,
    load_teacher,
    teacher_logits_for_split,
)

__all__ = ["NetAugObjective", "augmented_epochs", "run_netaug"]


def augmented_epochs(total_epochs: int, stop_fraction: float) -> int:
    """How many first epochs train with augmentation (``stop_fraction`` of them, rounded)."""
    return min(total_epochs, math.floor(total_epochs * stop_fraction + 0.5))


class NetAugObjective(Objective):
    """The base model and one sampled augmented model per step, with the same loss terms.

    Losses are logged as ``<term>`` (the base) and ``augmented.<term>`` (alpha times the
    augmented model's). The training meter reads the base's logits.
    """

    cached_teacher_logits: torch.Tensor | None  # a buffer (register_buffer in __init__)

    def __init__(
        self,
        model: SliceableModel,
        terms: Sequence[LossTerm] = (),
        *,
        width_multipliers: Sequence[float] = (1.0, 1.8, 2.6),
        aug_weight: float = 1.0,
        augment_epochs: int = 1_000_000,
        sort_channels: bool = True,
        bn_batches: int = 50,
        teacher: Teacher | None = None,
        cached_teacher_logits: torch.Tensor | None = None,
        use_labels: bool = True,
    ) -> None:
        super().__init__()
        terms = list(terms) or [HardTargetLoss(1.0)]
        for term in terms:
            if term.reads() or term.needs_live_teacher:
                raise KDistillError(
                    f"loss term {term.name!r} reads features or the live teacher; NetAug "
                    "combines with logit terms only (soft targets, hard targets, logit matching)"
                )
        self.model = model
        self.terms = nn.ModuleList(terms)
        self.teacher = teacher
        self.width_multipliers = [float(m) for m in width_multipliers]
        # The widest sample must fit in the stored tensors (a one-line error if not).
        model.widths_at([max(self.width_multipliers)] * len(model.base_widths))
        self.aug_weight = float(aug_weight)
        self.augment_epochs = augment_epochs
        self.sort_channels = sort_channels
        self.bn_batches = bn_batches
        self.use_labels = use_labels
        self.augmenting = augment_epochs > 0
        self.register_buffer("cached_teacher_logits", cached_teacher_logits, persistent=False)

    # --- the engine's hooks -----------------------------------------------------------------

    def start_epoch(self, epoch: int, total_epochs: int, optimizer: torch.optim.Optimizer) -> None:
        """Augment during the first ``augment_epochs`` epochs; sort channels at the start of
        each of them but the first (there the base is still its own initialisation, the same
        as a baseline run's with the same seed)."""
        self.augmenting = epoch < self.augment_epochs
        if not (self.augmenting and self.sort_channels and epoch > 0):
            return

        def permute(tensor: torch.Tensor, order: torch.Tensor, dim: int) -> None:
            with torch.no_grad():
                tensor.copy_(tensor.index_select(dim, order))
                # Momentum and Adam moments belong to a channel: they move with it.
                state = optimizer.state.get(tensor, {})
                for value in state.values():
                    if isinstance(value, torch.Tensor) and value.shape == tensor.shape:
                        value.copy_(value.index_select(dim, order))

        self.model.sort_channels(permute)

    def finish_training(self, loader: BatchSource) -> None:
        """Re-estimate the base's batch-norm statistics on ``bn_batches`` training batches
        (each batch weighs the same: the running average with momentum ``1 / (k + 1)``)."""
        norms = self.model.base_batch_norms()
        if not norms or self.bn_batches == 0:
            return
        momenta = [norm.momentum for norm in norms]
        was_training = self.model.training
        self.model.train()
        with torch.no_grad():
            for count, batch in enumerate(loader):
                if count == self.bn_batches:
                    break
                for norm in norms:
                    norm.momentum = 1.0 / (count + 1)
                self.model(batch.inputs)
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        self.model.train(was_training)

    # --- one step ---------------------------------------------------------------------------

    def sample_widths(self) -> list[int]:
        """One augmented model: a multiplier per hidden layer, drawn uniformly (torch's RNG,
        so a resumed run draws the same ones)."""
        draws = torch.randint(len(self.width_multipliers), (len(self.model.base_widths),))
        return self.model.widths_at([self.width_multipliers[int(i)] for i in draws])

    @property
    def teacher_view(self) -> nn.Module | None:
        if self.teacher is not None and len(self.teacher.members) == 1:
            return self.teacher.members[0]
        return self.teacher

    def _teacher_logits(self, batch: Batch) -> torch.Tensor | None:
        if self.cached_teacher_logits is not None:
            return cached_logits_of_batch(self.cached_teacher_logits, batch)
        if self.teacher is None:
            return None
        with torch.no_grad():
            return self.teacher(batch.inputs)

    def losses(
        self, logits: torch.Tensor, batch: Batch, teacher_logits: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """Each weighted term on one model's ``logits``."""
        context = TermContext(
            inputs=batch.inputs,
            labels=batch.labels,
            student_logits=logits,
            teacher_member_logits=teacher_logits,
            student=self.model,
            teacher=self.teacher_view,
            has_labels=self.use_labels,
        )
        return {
            str(term.name): term.weight * term(context)
            for term in self.terms
            if isinstance(term, LossTerm) and term.weight != 0
        }

    def forward(self, batch: Batch) -> ObjectiveOutput:
        teacher_logits = self._teacher_logits(batch)
        base_logits = self.model(batch.inputs)
        losses = self.losses(base_logits, batch, teacher_logits)
        if self.training and self.augmenting and self.aug_weight > 0:
            augmented = self.model(batch.inputs, self.sample_widths())
            for name, value in self.losses(augmented, batch, teacher_logits).items():
                losses[f"augmented.{name}"] = self.aug_weight * value
        return ObjectiveOutput(losses, base_logits)

    def prepare(self, batch: Batch) -> None:
        with torch.no_grad():
            self.forward(batch)

    def evaluation_models(self) -> dict[str, nn.Module]:
        """The base alone, exported as the plain model it is (a copy)."""
        return {"model": self.model.export_base()}


# --- From a config: the function behind ``kdistill netaug`` ---------------------------------


def run_netaug(
    config: NetAugRunConfig, *, resume: bool = False, dataset: DataSet | None = None
) -> FitResult:
    """Train ``config.model`` (an ``mlp`` or ``cnn``) with network augmentation, with KD from
    ``netaug.distill.teachers`` if given. Saves ``model.safetensors``: the base alone."""
    if not isinstance(config, NetAugRunConfig):
        raise KDistillError(
            f"run_netaug takes a NetAugRunConfig, got {type(config).__name__}: add a netaug section"
        )
    options: NetAugConfig = config.netaug
    data = prepare_data(config.data, config.seed, dataset)
    settings = fit_settings(config, Path(config.output_dir))
    base = build_model(config.model, config.seed)
    check_model(settings.task, base, data, f"model {config.model.name}")
    model = make_sliceable(base, max(options.width_multipliers))
    teacher = None
    cached = None
    terms: list[LossTerm] = [HardTargetLoss(1.0)]
    use_labels = True
    if options.distill is not None:
        kd = options.distill
        teacher = load_teacher(kd.teachers)
        check_teacher_encoding(teacher, data, [t.checkpoint for t in kd.teachers])
        settings.task.probe(teacher.members[0], data.train, f"teacher {kd.teachers[0].checkpoint}")
        terms = terms_from_config(kd)
        use_labels = kd.use_labels
        max_shift = config.data.max_shift
        if use_cached_logits(terms, max_shift, kd.cache_teacher_logits, config.train.epochs):
            cached = teacher_logits_for_split(
                teacher,
                data.train,
                cache_dir(),
                max_shift=max_shift,
                device=resolve_device(config.train.device),
            )
    augment_epochs = augmented_epochs(config.train.epochs, options.stop_fraction)
    objective = NetAugObjective(
        model,
        terms,
        width_multipliers=options.width_multipliers,
        aug_weight=options.aug_weight,
        augment_epochs=augment_epochs,
        sort_channels=options.sort_channels,
        bn_batches=options.bn_batches,
        teacher=teacher,
        cached_teacher_logits=cached,
        use_labels=use_labels,
    )
    run_dir = write_run_config(config)
    settings.description = f"netaug {run_dir.name}"
    settings.recipes = {"model": model.base_recipe()}
    settings.metadata = {
        "augment_epochs": augment_epochs,
        "max_widths": model.max_widths,
        "teacher_cache": cached is not None,
    }
    return fit(objective, data, settings, resume=resume)
