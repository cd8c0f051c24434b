"""Deep Mutual Learning: a cohort of students that teach each other while they train.

Reference: Y. Zhang, T. Xiang, T. M. Hospedales, H. Lu, "Deep Mutual Learning", CVPR 2018.

Two networks (section 3.1, eq. 1-2): each minimises its cross-entropy with the labels plus
the KL divergence from its peer's predicted distribution to its own,
``L_Theta1 = L_C1 + D_KL(p2 || p1)`` and ``L_Theta2 = L_C2 + D_KL(p1 || p2)``, where
``D_KL(p2 || p1) = sum_i sum_m p2^m(x_i) log(p2^m(x_i) / p1^m(x_i))``.
K networks (section 3.2): ``L_Thetak = L_Ck + 1/(K-1) sum_{l != k} D_KL(p_l || p_k)`` (eq. 5),
or, with the other members' ensemble as one teacher,
``L_Thetak = L_Ck + D_KL(p_avg || p_k)``, ``p_avg = 1/(K-1) sum_{l != k} p_l`` (eq. 6).
Both are available (``mutual.peer_target``: ``pairwise`` = eq. 5, ``average`` = eq. 6, the
default); for two members they are the same loss.

Differences from the paper, on purpose:

* Update order. Algorithm 1 updates Theta1 on a mini-batch, recomputes p1 with the new
  weights, then updates Theta2. Here all members step together from one forward pass, each
  treating its peers' predictions as constants (detached, as the paper does when it
  differentiates L_Thetak with respect to Theta_k only). So member 2 sees member 1's
  predictions from before member 1's step on that batch, not after; it costs one forward
  pass per member per batch and fits the engine's one loop unchanged.
* The losses are averaged over the batch instead of summed over examples (a learning-rate
  scale), and ``mutual.temperature`` T != 1 softens both sides and scales the KL by ``T^2``
  as in Hinton et al. (2015); T = 1 is the paper.
* One optimizer holds the whole cohort. SGD and AdamW act per parameter, so this equals one
  optimizer per member with the same settings, except ``train.grad_clip``, which clips the
  cohort's global gradient norm.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.config import (
    ModelConfig,
    MutualConfig,
    MutualRunConfig,
    TrainRunConfig,
    config_digest,
)
from kdistill.data import Batch, DataSet, TrainingData, prepare_data
from kdistill.engine import FitResult, fit, is_main_process, resolve_device
from kdistill.engine.objective import Objective, ObjectiveOutput, SupervisedObjective
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text
from kdistill.losses.logits import teacher_log_probs
from kdistill.methods.born_again import ensemble_log_probs
from kdistill.methods.common import (
    build_model,
    check_model,
    claim_run_folder,
    derived_seed,
    fit_settings,
    resumable_checkpoint,
)
from kdistill.tasks import create_task, without_confusion
from kdistill.teachers import evaluate_growing_ensembles

PEER_TARGETS = ("average", "pairwise")
SUMMARY_NAME = "mutual.json"


def mutual_kl(
    own_logits: torch.Tensor,
    peer_logits: torch.Tensor,
    temperature: float = 1.0,
    peer_target: str = "average",
) -> torch.Tensor:
    """One member's mimicry loss: ``T^2 * D_KL(p_peers || p_own)``, averaged over the batch.

    ``peer_logits`` is ``[peers, batch, classes]`` and is detached here: the peers are the
    teacher of this term, so no gradient flows into them through it. ``average`` is eq. 6
    (KL from the mean of the peers' distributions); ``pairwise`` is eq. 5 (mean over peers of
    the KL from each). Zero when every peer predicts what this member predicts.
    """
    if peer_target not in PEER_TARGETS:
        raise KDistillError(
            f"mutual.peer_target must be one of {', '.join(PEER_TARGETS)}, got {peer_target!r}"
        )
    peers = peer_logits.detach()
    own_log_probs = F.log_softmax(own_logits / temperature, dim=-1)
    if peer_target == "average":
        # log of the peers' mean distribution, via log-sum-exp so it never takes log(0).
        peer_log_probs = teacher_log_probs(peers, temperature, "arithmetic")
    else:
        peer_log_probs = F.log_softmax(peers / temperature, dim=-1)
    pointwise = peer_log_probs.exp() * (peer_log_probs - own_log_probs)
    # Sum over classes; mean over the batch (and, for eq. 5, over the K-1 peers).
    return pointwise.sum(dim=-1).mean() * temperature**2


class MutualObjective(Objective):
    """A DML cohort as one objective: per member ``ce.<k>`` and ``kl.<k>`` (weighted) losses.

    ``evaluation_models()`` is every member as ``member<k>``, so the engine logs, evaluates and
    saves each one. The logits returned for the engine's training error are the cohort
    ensemble's (log of the members' mean distribution). See the module docstring for how
    the simultaneous update relates to the paper's Algorithm 1.
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        kl_weight: float = 1.0,
        temperature: float = 1.0,
        peer_target: str = "average",
    ) -> None:
        super().__init__()
        if len(members) < 2:
            raise KDistillError(
                f"mutual learning needs a cohort of at least 2 members, got {len(members)}: "
                "list two or more models under mutual.members"
            )
        if temperature <= 0:
            raise KDistillError(f"mutual.temperature must be > 0, got {temperature}")
        if peer_target not in PEER_TARGETS:
            raise KDistillError(
                f"mutual.peer_target must be one of {', '.join(PEER_TARGETS)}, got {peer_target!r}"
            )
        self.members = nn.ModuleList(members)
        self.kl_weight = float(kl_weight)
        self.temperature = float(temperature)
        self.peer_target = peer_target

    def forward(self, batch: Batch) -> ObjectiveOutput:
        logits = [member(batch.inputs) for member in self.members]
        losses: dict[str, torch.Tensor] = {}
        for index, own in enumerate(logits):
            losses[f"ce.{index}"] = F.cross_entropy(own, batch.labels)
            if self.kl_weight != 0:
                peers = torch.stack([other for j, other in enumerate(logits) if j != index])
                losses[f"kl.{index}"] = self.kl_weight * mutual_kl(
                    own, peers, self.temperature, self.peer_target
                )
        cohort = ensemble_log_probs(torch.stack(logits).detach())
        return ObjectiveOutput(losses, cohort)

    def evaluation_models(self) -> dict[str, nn.Module]:
        return {f"member{index}": member for index, member in enumerate(self.members)}


def member_seed(seed: int, index: int) -> int:
    """Initialisation seed of cohort member ``index``.

    Member 0 uses the run's seed, so it starts exactly like ``kdistill train`` (and born-again
    generation 0) with the same model and seed; the others get their own initialisations,
    so a cohort of one architecture does not start as identical twins.
    """
    return seed if index == 0 else derived_seed(seed, f"mutual-member-{index}")


def build_member(member: ModelConfig, seed: int, index: int) -> nn.Module:
    return build_model(member, member_seed(seed, index))


def _mutual_settings(config: MutualRunConfig) -> MutualConfig:
    if not isinstance(config, MutualRunConfig):
        raise KDistillError(
            "this config has no mutual section: add mutual.members (see configs/mutual/)"
        )
    return config.mutual


def _build_cohort(config: MutualRunConfig, data: TrainingData) -> list[nn.Module]:
    settings = _mutual_settings(config)
    members = [
        build_member(member, config.seed, index) for index, member in enumerate(settings.members)
    ]
    task = create_task(config.task)
    outputs = [
        check_model(task, member, data, f"mutual.members[{index}] {spec.name}")
        for index, (member, spec) in enumerate(zip(members, settings.members, strict=True))
    ]
    if len(set(outputs)) > 1:
        raise KDistillError(
            f"the cohort's members output {outputs} classes: give every member the same "
            "model.kwargs.num_classes"
        )
    return members


def _alone(
    config: MutualRunConfig, index: int, data: TrainingData, run_dir: Path, resume: bool
) -> FitResult:
    settings = _mutual_settings(config)
    if not 0 <= index < len(settings.members):
        raise KDistillError(
            f"member index {index} is out of range: the cohort has {len(settings.members)} members"
        )
    member = settings.members[index]
    model = build_member(member, config.seed, index)
    check_model(create_task(config.task), model, data, f"mutual.members[{index}] {member.name}")
    # Identified by what this model's training depends on only, so changing the cohort's
    # KL weight does not invalidate its baselines.
    solo = TrainRunConfig(
        seed=config.seed, task=config.task, data=config.data, model=member, train=config.train
    )
    identity = {"procedure": "alone", "member_index": index, "config_digest": config_digest(solo)}
    return fit(
        SupervisedObjective(model),
        data,
        fit_settings(
            config,
            run_dir,
            recipes={"model": member.model_dump()},
            description=f"alone member{index}",
            metadata=identity,
        ),
        resume=resume and resumable_checkpoint(run_dir, identity),
    )


def train_alone(
    config: MutualRunConfig,
    index: int,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    dataset: DataSet | None = None,
) -> FitResult:
    """Train cohort member ``index`` alone on the labels: DML's "independent" baseline.

    Same initialisation as in the cohort (:func:`member_seed`), same batches (the run's
    seed), same epochs and optimizer; only the KL term is missing. Writes
    ``model.safetensors`` to ``run_dir`` (default ``output_dir/alone-<index>``).
    """
    data = prepare_data(config.data, config.seed, dataset)
    target = Path(run_dir) if run_dir is not None else Path(config.output_dir) / f"alone-{index}"
    return _alone(config, index, data, target, resume)


@dataclass
class MutualResult:
    output_dir: Path
    members: list[dict[str, Any]]
    """Per member: split name -> the engine's metrics summary, after the last epoch."""
    cohort: dict[str, Any]
    """The cohort's ensemble (mean of the members' softmax), split name -> metrics."""
    baselines: list[dict[str, Any]] | None
    """Per member: the same network trained alone (None without baselines)."""
    history: list[dict[str, Any]]
    seconds: float

    def test_errors(self) -> list[int]:
        return [int(member["test"]["errors"]) for member in self.members]

    def baseline_test_errors(self) -> list[int] | None:
        if self.baselines is None:
            return None
        return [int(baseline["test"]["errors"]) for baseline in self.baselines]

    def summary(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "seconds": round(self.seconds, 2),
            "members": [without_confusion(member) for member in self.members],
            "cohort_ensemble": without_confusion(self.cohort),
            "alone": [without_confusion(b) for b in self.baselines]
            if self.baselines is not None
            else None,
        }


def run_mutual(
    config: MutualRunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    with_baselines: bool = True,
    dataset: DataSet | None = None,
) -> MutualResult:
    """Train the ``mutual.members`` cohort together (Zhang et al. 2018), in ``output_dir/cohort``.

    Every member is evaluated and saved as ``cohort/member<k>.safetensors``; the cohort's
    ensemble is evaluated at the end. ``with_baselines`` also trains each member alone
    (:func:`train_alone`, ``output_dir/alone-<k>``) for the comparison the paper makes.
    ``resume`` continues every run from its epoch checkpoint; without it a folder holding
    another run is refused unless ``overwrite``. Writes ``output_dir/mutual.json``.
    """
    settings = _mutual_settings(config)
    data = prepare_data(config.data, config.seed, dataset)
    members = _build_cohort(config, data)
    fit_settings(config, Path(config.output_dir))  # the device and the task, before any write
    # ``model`` is not used by a cohort: leave it out so editing it does not block --resume.
    with claim_run_folder(config, resume=resume, overwrite=overwrite, drop=("model",)) as root:
        return _run_cohort(config, settings, data, members, root, resume, with_baselines)


def _run_cohort(
    config: MutualRunConfig,
    settings: MutualConfig,
    data: TrainingData,
    members: list[nn.Module],
    root: Path,
    resume: bool,
    with_baselines: bool,
) -> MutualResult:
    objective = MutualObjective(
        members, settings.kl_weight, settings.temperature, settings.peer_target
    )
    # ``model`` is not used by a cohort: leave it out so editing it does not block --resume.
    identity = {"procedure": "mutual", "config_digest": config_digest(config, drop=("model",))}
    cohort_dir = root / "cohort"
    started = time.perf_counter()
    result = fit(
        objective,
        data,
        fit_settings(
            config,
            cohort_dir,
            recipes={
                f"member{index}": member.model_dump()
                for index, member in enumerate(settings.members)
            },
            description="mutual cohort",
            metadata=identity,
        ),
        resume=resume and resumable_checkpoint(cohort_dir, identity),
    )
    seconds = time.perf_counter() - started
    device = resolve_device(config.train.device)
    cohort = {
        name: evaluation.summary()
        for name, evaluation in evaluate_growing_ensembles(
            list(objective.members),
            data.eval_splits,
            batch_size=config.train.eval_batch_size,
            device=device,
        )[-1].items()
    }
    baselines = None
    if with_baselines:
        baselines = [
            _alone(config, index, data, root / f"alone-{index}", resume).final["model"]
            for index in range(len(settings.members))
        ]
    outcome = MutualResult(
        root,
        [result.final[f"member{index}"] for index in range(len(members))],
        cohort,
        baselines,
        result.history,
        seconds,
    )
    if is_main_process():  # under torchrun, rank 0 writes for every process
        atomic_write_text(root / SUMMARY_NAME, json.dumps(outcome.summary(), indent=2) + "\n")
    return outcome


__all__ = [
    "MutualObjective",
    "MutualResult",
    "build_member",
    "member_seed",
    "mutual_kl",
    "run_mutual",
    "train_alone",
]
