"""Teachers: one trained model or an ensemble, frozen and always in eval mode.

Hinton et al. (2015), section 2: the soft targets may come from one cumbersome model or
from an ensemble, combined by the arithmetic or geometric mean of the members'
distributions (see :func:`kdistill.losses.logits.teacher_log_probs`). The teacher here only
produces the members' logits, stacked as ``[members, batch, classes]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn

from kdistill.config import TeacherConfig
from kdistill.data import Split
from kdistill.engine.checkpoint import load_model
from kdistill.engine.evaluate import Evaluation, evaluate_logits, predict_logits
from kdistill.losses.logits import teacher_log_probs


class Teacher(nn.Module):
    """A frozen ensemble of one or more models. ``train()`` never takes it out of eval mode,
    so dropout and batch-norm statistics stay fixed whatever the caller does."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
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
    """Load every member's weights safely (safetensors or ``weights_only`` state dicts)."""
    members = []
    for config in configs:
        recipe = config.model.model_dump() if config.model is not None else None
        model, _ = load_model(config.checkpoint, recipe)
        members.append(model)
    return Teacher(members)


def evaluate_ensemble(
    teacher: Teacher, split: Split, rule: str = "arithmetic", batch_size: int = 2000
) -> tuple[Evaluation, list[Evaluation]]:
    """Test an ensemble as its soft targets would be formed at T = 1 (arithmetic or geometric
    mean of the members' distributions, Hinton et al. 2015, section 2); also each member."""
    member_logits = torch.stack(
        [predict_logits(member, split.images, batch_size) for member in teacher.members]
    )
    combined = teacher_log_probs(member_logits, 1.0, rule)
    members = [evaluate_logits(logits, split.labels) for logits in member_logits]
    return evaluate_logits(combined, split.labels), members
