"""The sections of a run config (``data``, ``model``, ``train``, ``distill`` and each verb's
own), validated by pydantic; every default reproduces Hinton et al.'s MNIST set-up where one
exists."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NormalizeValues(_Strict):
    """Explicit normalisation: one value per channel (images) or per feature."""

    mean: list[float] = Field(min_length=1)
    std: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_length(self) -> NormalizeValues:
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"mean has {len(self.mean)} values and std {len(self.std)}: give as many of each"
            )
        return self


class TextConfig(_Strict):
    """Text data sets (``data.name: bbc``): how articles become token ids, which are held out
    and what unlabelled text joins the transfer set."""

    max_length: int = Field(128, ge=8, le=512)
    """Token ids per text (longer texts are cut, shorter ones padded)."""
    test_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of the de-duplicated articles held out for test, stratified by topic."""
    split_seed: int = Field(0, ge=0)
    """Which stratified train/test split (repeat over several for the spread)."""
    tokenizer: Literal["minilm", "smollm2"] = "minilm"
    """MiniLM's WordPiece (encoders) or SmolLM2's BPE (causal LMs distilled from SmolLM2)."""
    unlabelled_fortunes: int = Field(0, ge=0)
    """Add this many ``fortunes`` quotations to the training split, unlabelled (label -100):
    a transfer set of training articles plus unlabelled text."""


class DataConfig(_Strict):
    name: str = "mnist"
    """``mnist``, ``fashion-mnist``, ``idx:DIR`` or ``npz:FILE`` (uint8 images or float
    features of any shape, e.g. tabular ``x_train`` ``[N, F]``)."""
    normalize: Literal["per-feature", "per-channel"] | NormalizeValues | None = None
    """Subtract a mean and divide by a std after pixels are scaled to [0, 1]: statistics of
    the training split ``per-feature`` or ``per-channel``, or given ``{mean: [...], std: [...]}``."""
    input_shape: list[int] | None = None
    """Per-example shape the models receive, e.g. ``[-1]`` for flat ``[N, 784]`` input;
    default: as stored (``[1, 28, 28]`` for MNIST, ``[F]`` for tabular)."""
    max_shift: int = Field(0, ge=0, le=8)
    """Random translation of training images by up to this many pixels (the paper's jitter)."""
    keep_classes: list[int] | None = None
    """Train (transfer set) only on these classes, e.g. everything but 3."""
    train_fraction: float = Field(1.0, gt=0, le=1)
    validation_size: int = Field(0, ge=0)
    """Examples carved from the training set for model selection; never the test set."""
    text: TextConfig = Field(default_factory=TextConfig)
    """Tokenisation and splits of text data sets (``bbc``); ignored by image and tabular data."""


class ModelConfig(_Strict):
    name: str = "mlp"
    """A registered name (``mlp``, ``cnn``) or ``package.module:factory``."""
    kwargs: dict[str, Any] = Field(default_factory=dict)


class OptimizerConfig(_Strict):
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    fused: bool = False
    """One fused kernel per optimizer step: much faster on CPUs, but not bit-identical to the
    default multi-tensor step (its rounding differs in the last bit), so off by default."""


class ParameterGroupConfig(_Strict):
    """Optimizer settings for one part of an objective (a GAN's discriminator), each replacing
    the run's ``train.optimizer`` value for that part's parameters only; a key left out keeps
    the run's. The schedule moves this part's ``lr`` in proportion to the run's (warm-up,
    cosine), so ``lr`` is its peak."""

    lr: float | None = Field(None, gt=0)
    betas: tuple[float, float] | None = None
    """AdamW only (``train.optimizer.name: adamw``)."""
    weight_decay: float | None = Field(None, ge=0)
    momentum: float | None = Field(None, ge=0, lt=1)
    """SGD only."""


class ScheduleConfig(_Strict):
    name: Literal["constant", "cosine", "step", "exponential"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    step_epochs: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0)
    final_lr_fraction: float = Field(0.0, ge=0, le=1)


class EarlyStoppingConfig(_Strict):
    """Stop before ``train.epochs`` when a metric on an evaluated split has not improved for
    ``patience`` epochs (``train.epochs`` is then the most a run may train). The models kept
    are those of the last epoch trained, as everywhere else."""

    patience: int = Field(ge=1)
    split: str = "validation"
    """An evaluated split; ``validation`` needs ``data.validation_size`` (never the test set)."""
    metric: str = "errors"
    """A figure of the task's evaluation summary (``errors``, ``loss``, ...)."""
    mode: Literal["min", "max"] = "min"
    model: str | None = None
    """Which evaluated model the metric is read from (default: the first, e.g. the student)."""


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(100, ge=1)
    eval_batch_size: int = Field(2000, ge=1)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    grad_clip: float | None = Field(None, gt=0)
    device: str = "cpu"
    """``cpu``, ``cuda``, ``cuda:1``, ``mps`` or ``auto``."""
    mixed_precision: Literal["off", "bf16", "fp16"] = "off"
    """Autocast for the forward pass; keep ``off`` on CPUs (bf16 is very slow on many)."""
    threads: int | None = Field(None, ge=1)
    channels_last: bool = False
    """Keep the convolution weights (and so their activations) in the channels-last memory
    layout, oneDNN's fast path on CPUs: measured here 1.2-1.4x per training step for the CNN
    and dense teachers, about even for the tiny students (``kdistill bench speed``). Only the
    bits of float rounding change. A model that calls ``.view`` on a convolution's output
    needs ``.reshape`` (or ``nn.Flatten``) instead."""
    progress: bool = True
    tensorboard: bool = False
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint_every_steps: int | None = Field(None, ge=1)
    """Also checkpoint every this many optimizer steps inside an epoch (hour-long epochs of
    large transfer sets); a resume continues mid-epoch to the same weights. Default: after
    every epoch only."""


class TermConfig(BaseModel):
    """One extra loss term: ``kind`` names it (see ``kdistill.losses``), ``weight`` scales it,
    any other key is passed to the term's constructor."""

    model_config = ConfigDict(extra="allow")
    kind: str
    weight: float = 1.0


class TeacherConfig(_Strict):
    checkpoint: str
    """A model file written by ``kdistill train`` (``model.safetensors``; its JSON sidecar
    says how to build the model), a ``.pt`` state dict with ``model`` given, or
    ``pretrained:NAME``: a registered model that loads its own published weights (``minilm``)."""
    model: ModelConfig | None = None


class HolisticConfig(_Strict):
    """Liu et al.'s holistic distillation (CVPR 2019, section 3.1, eq. 3), ``task:
    segmentation``: a conditional discriminator scores (segmentation map, image); the
    teacher's soft map is the real sample, the student's the fake, and the two play a
    Wasserstein GAN with gradient penalty (Gulrajani et al. 2017) on the one optimizer
    (the discriminator in its own parameter group when ``discriminator_optimizer`` is set)."""

    weight: float = Field(0.1, ge=0)
    """lambda of the student's adversarial loss ``-l_ho`` (the paper's 0.1)."""
    gradient_penalty: float = Field(10.0, ge=0)
    """Weight of the WGAN-GP penalty in the discriminator's loss (Gulrajani et al.'s 10)."""
    loss: Literal["wasserstein", "hinge", "non-saturating"] = "wasserstein"
    discriminator: ModelConfig = Field(
        default_factory=lambda: ModelConfig(name="seg-discriminator")
    )
    """Called as ``D(maps [B, classes, H, W], images) -> [B]``; ``seg-discriminator`` takes
    ``kwargs: {num_classes, in_channels, channels}``."""
    discriminator_optimizer: ParameterGroupConfig | None = None
    """The discriminator's own optimizer settings (WGAN-GP critics train at a small ``lr``
    with Adam ``betas: [0.5, 0.9]``, Gulrajani et al. 2017, Algorithm 1); default: the
    student's ``train.optimizer``."""


class OnPolicyConfig(_Strict):
    """GKD's on-policy batches (Agarwal et al., ICLR 2024, Algorithm 1): a share ``fraction``
    (the paper's lambda) of the training batches is replaced by the student's own
    continuations of its texts' first ``prompt_tokens`` tokens, and the divergence terms are
    computed on the generated tokens only, with the teacher run live on them."""

    fraction: float = Field(0.5, ge=0, le=1)
    """The paper's lambda: the share of on-policy batches, spread evenly over the steps with a
    phase drawn from the seed (the paper draws each batch with probability lambda)."""
    max_new_tokens: int = Field(32, ge=1)
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature of the student's continuations (the paper samples at 1)."""
    prompt_tokens: int = Field(16, ge=1)
    """The prompt: each text's first tokens (fewer when a text of the batch is shorter)."""


class DistillConfig(_Strict):
    teachers: list[TeacherConfig] = Field(min_length=1)
    ensemble_rule: Literal["arithmetic", "geometric"] = "arithmetic"
    objective: Literal["soft-targets", "logit-matching"] = "soft-targets"
    temperature: float = Field(20.0, gt=0)
    soft_target_weight: float = Field(1.0, ge=0)
    hard_target_weight: float = Field(0.1, ge=0)
    """The paper: a considerably lower weight on the hard term gave the best results."""
    use_labels: bool = True
    """False: an unlabeled transfer set, soft term only."""
    cache_teacher_logits: Literal["auto", "always", "never"] = "auto"
    """``auto`` caches when no term needs the live teacher and the transfer set is not
    augmented, or is jittered and trains for at least ``(2 max_shift + 1)^2`` epochs (one
    teacher pass per shift); ``always`` caches whatever the length."""
    terms: list[TermConfig] = Field(default_factory=list)
    cache_teacher_features: bool = False
    """Compute the teacher features the terms read (and its logits) once on the transfer set
    and read them by example instead of running the teacher each step (a fixed transfer set
    only; memory: every feature of every example)."""
    hint_epochs: int = Field(0, ge=0)
    """FitNet's two-stage training: this many epochs with only the hint terms first."""
    keep_hints: bool = False
    """With ``hint_epochs``: keep the hint terms in stage 2 too (the paper's stage 2 drops them)."""
    holistic: HolisticConfig | None = None
    """``task: segmentation``: add the holistic adversarial term (Liu et al. 2019)."""
    on_policy: OnPolicyConfig | None = None
    """Causal LMs: a share of batches generated by the student (GKD); see :class:`OnPolicyConfig`."""


# --- Self and online distillation (born-again networks, deep mutual learning) ---------------


class BornAgainConfig(_Strict):
    """Born-Again Networks (Furlanello et al., ICML 2018, section 3): generation k+1 has the
    architecture of generation k and learns from scratch from k's outputs and the labels."""

    generations: int = Field(3, ge=1)
    """Students after the label-trained generation 0; ``--generations`` overrides it."""
    temperature: float = Field(1.0, gt=0)
    """BAN matches the teacher's plain softmax (T = 1); other values scale the soft term by T^2."""
    soft_target_weight: float = Field(1.0, ge=0)
    hard_target_weight: float = Field(1.0, ge=0)
    """0 trains each student on its teacher's outputs alone; 1 adds the label cross-entropy."""
    teacher: str | None = None
    """A model file to use as generation 0 instead of training one on the labels."""

    @model_validator(mode="after")
    def _check_weights(self) -> BornAgainConfig:
        if self.soft_target_weight == 0 and self.hard_target_weight == 0:
            raise ValueError(
                "soft_target_weight and hard_target_weight are both 0: set at least one > 0"
            )
        return self


class MutualConfig(_Strict):
    """Deep Mutual Learning (Zhang et al., CVPR 2018): a cohort trained together from scratch,
    each member with its cross-entropy plus a KL term towards its peers' predictions."""

    members: list[ModelConfig] = Field(min_length=2)
    """The cohort, e.g. ``[{name: mlp, kwargs: {...}}, {name: cnn, kwargs: {...}}]``."""
    kl_weight: float = Field(1.0, ge=0)
    temperature: float = Field(1.0, gt=0)
    """The paper uses T = 1; other values soften both sides and scale the KL term by T^2."""
    peer_target: Literal["average", "pairwise"] = "average"
    """``average``: KL to the mean of the other members' distributions (eq. 6);
    ``pairwise``: the mean of the KLs to each other member (eq. 5). Same for two members."""


class SpecialistsConfig(_Strict):
    """Generalist + specialists (Hinton et al. 2015, section 5): how the class sets are found,
    how specialists train, how they are combined, and the single model distilled from them."""

    num_specialists: int = Field(10, ge=1)
    classes_per_specialist: int | None = Field(12, ge=1)
    """None: each specialist covers one K-means cluster (disjoint, sizes as found)."""
    overlap: bool = True
    """With ``classes_per_specialist``: the classes nearest each centre (a class may be in
    several specialists or in none), else dealt out so the sets are disjoint."""
    normalize_columns: bool = True
    """Scale the covariance's columns to unit length before K-means (the paper: raw columns)."""
    kmeans_iterations: int = Field(300, ge=1)
    kmeans_batch_size: int = Field(32, ge=1)
    batch_share: float = Field(0.5, gt=0, lt=1)
    """Share of a specialist's batch drawn from its own classes (the paper: half)."""
    dustbin_shift: Literal["paper", "prior"] = "paper"
    """``paper``: raise the dustbin logit by log(oversampling of the subset); ``prior``: the
    full prior correction (also counts the dustbin's undersampling)."""
    top_n: int = Field(1, ge=1)
    """Specialists are active when they cover one of the generalist's top-n classes."""
    inference_steps: int = Field(500, ge=1)
    inference_lr: float = Field(1.0, gt=0)
    distill_temperature: float = Field(2.0, gt=0)
    distill_soft_target_weight: float = Field(1.0, ge=0)
    distill_hard_target_weight: float = Field(0.1, ge=0)


# --- Network Augmentation (tiny models) -----------------------------------------------------


class NetAugConfig(_Strict):
    """Network Augmentation (Cai et al., ICLR 2022): the base model (``model``, an ``mlp`` or
    ``cnn``) is trained inside wider copies of itself that share its weights."""

    width_multipliers: list[float] = Field(default_factory=lambda: [1.0, 1.8, 2.6], min_length=1)
    """Each step's augmented model takes one of these per hidden layer (the base is 1.0)."""
    aug_weight: float = Field(1.0, ge=0)
    """alpha in ``L(base) + alpha * L(augmented)``."""
    stop_fraction: float = Field(0.5, ge=0, le=1)
    """Augment (and sort channels) during the first ``stop_fraction`` of the epochs only."""
    sort_channels: bool = True
    """Sort every layer's channels by L1 norm at each augmented epoch's start."""
    bn_batches: int = Field(50, ge=0)
    """Training batches to re-estimate batch-norm statistics on at the end (0: skip)."""
    distill: DistillConfig | None = None
    """NetAug + KD: the teachers and terms of ``kdistill distill``, applied to the base and
    to the augmented model alike (logit terms only)."""

    @model_validator(mode="after")
    def _check_multipliers(self) -> NetAugConfig:
        if min(self.width_multipliers) < 1:
            raise ValueError(
                "width_multipliers must all be >= 1 (the base is 1.0): NetAug widens the model"
            )
        if self.distill is not None and self.distill.holistic is not None:
            raise ValueError("netaug.distill.holistic is not supported: remove it")
        return self


# --- Generative adversarial training (task: generation; GAN Compression) ---------------------


class GanConfig(_Strict):
    """A class-conditional GAN (``task: generation``): ``model`` is the generator, this section
    its discriminator, the adversarial loss and the classifier whose feature space measures
    the samples (GAN Compression, Li et al., CVPR 2020, for ``kdistill distill``)."""

    classifier: str
    """A classifier's model file written by ``kdistill train`` on the same data set: its
    features give the Frechet distance (not Inception-FID) and its predictions the accuracy
    of generated samples."""
    feature_layer: str = "classifier"
    """Module path of the classifier whose ``feature_kind`` gives the features (``cnn``: the
    input of ``classifier``, the pooled map)."""
    feature_kind: Literal["input", "output"] = "input"
    discriminator: ModelConfig = Field(
        default_factory=lambda: ModelConfig(name="cgan-discriminator")
    )
    discriminator_init: str | None = None
    """A ``discriminator.safetensors`` to start from (the paper starts the student's
    discriminator from the teacher's); default: a fresh one."""
    discriminator_optimizer: ParameterGroupConfig | None = None
    """The discriminator's own optimizer settings; default: the generator's
    ``train.optimizer``."""
    loss: Literal["non-saturating", "hinge"] = "non-saturating"
    adversarial_weight: float = Field(1.0, ge=0)
    """Weight of the generator's adversarial loss (GAN Compression's lambda_cGAN = 1)."""
    eval_samples: int = Field(2000, ge=10)
    """Generated samples per evaluation (balanced classes, fixed noise)."""
    eval_seed: int = 0
    nearest_k: int = Field(3, ge=1)
    """k of the k-nearest-neighbour balls of precision and recall."""
