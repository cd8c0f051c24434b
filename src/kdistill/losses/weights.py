"""Match the student's weight matrices to the teacher's through learned linear maps.

For a student layer with weight ``W_s`` (``[out_s, in_s]``) and a teacher layer with
``W_t`` (``[out_t, in_t]``), two learned matrices ``A`` (``[out_s, out_t]``, mixing the
teacher's output units) and ``B`` (``[in_t, in_s]``, mixing its input units) carry the
teacher's weights into the student's shape, and the loss is the mean squared difference

    L = mean_{ij} ( (A W_t B)_{ij} - (W_s)_{ij} )^2 .

The student's weights and both maps are trained; the teacher's weights are constants. The
maps make the shapes of the two layers independent, so a narrow student can match a wide
teacher. There is no single canonical paper for this term: it is the linear form of the idea
behind the parameter generator of Lin et al., "Weight Distillation: Transferring the Knowledge
in Neural Network Parameters" (ACL 2021), which derives student matrices from teacher
matrices through learned transforms; here the mapped matrix is a target for the student's own
weights rather than their replacement.

Convolution (and any other ``[out, in, ...]``) weights are flattened to
``[out, in * kernel elements]``, so kernel sizes may differ too. Biases are not matched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import torch
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm, TermContext, register_term
from kdistill.losses.feature_terms import check_path_pairs, require_teacher
from kdistill.losses.hooks import resolve_module


def weight_matrix(model: nn.Module, path: str, side: str) -> torch.Tensor:
    """The weight of module ``path`` as a ``[out, rest]`` matrix."""
    module = resolve_module(model, path)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        raise KDistillError(
            f"weights: the {side} module {path!r} ({type(module).__name__}) has no weight matrix; "
            "pick a Linear, Conv or Embedding layer"
        )
    return weight.reshape(weight.shape[0], -1)


def mapped_weight_error(
    student_weight: torch.Tensor,
    teacher_weight: torch.Tensor,
    row_map: torch.Tensor,
    column_map: torch.Tensor,
) -> torch.Tensor:
    """``mean((row_map @ W_t @ column_map - W_s)^2)`` for 2-D ``W_s`` and ``W_t``."""
    mapped = row_map @ teacher_weight @ column_map
    return (mapped - student_weight).pow(2).mean()


class WeightMap(nn.Module):
    """The two learned matrices ``A`` (``[out_s, out_t]``) and ``B`` (``[in_t, in_s]``).

    Both start as rectangular identities, so ``A W_t B`` starts as the top-left
    ``out_s x in_s`` block of ``W_t``: the student is first pulled towards a slice of the
    teacher at the teacher's own scale.
    """

    def __init__(
        self,
        student_shape: tuple[int, int],
        teacher_shape: tuple[int, int],
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        (out_s, in_s), (out_t, in_t) = student_shape, teacher_shape
        self.row_map = nn.Parameter(torch.eye(out_s, out_t, **factory))
        self.column_map = nn.Parameter(torch.eye(in_t, in_s, **factory))

    def shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((out_s, in_s), (out_t, in_t))``, the layer shapes these maps connect."""
        out_s, out_t = self.row_map.shape
        in_t, in_s = self.column_map.shape
        return (out_s, in_s), (out_t, in_t)

    def forward(self, teacher_weight: torch.Tensor) -> torch.Tensor:
        """``A W_t B``, the teacher's matrix carried into the student's shape."""
        return self.row_map @ teacher_weight @ self.column_map


@register_term
class WeightMatchingLoss(LossTerm):
    """Squared error between each student weight matrix and the mapped teacher matrix.

    ``pairs`` lists ``[student_path, teacher_path]`` module paths. The loss is the sum over
    pairs of ``mean((A W_t B - W_s)^2)``. The maps ``A`` and ``B`` are submodules of this term,
    created on the first forward pass (or :meth:`prepare`), before the optimizer exists.
    Reads no features: it looks the modules up in ``context.student`` and ``context.teacher``.
    """

    name = "weights"
    # Reads the teacher's weights, not its outputs: cached teacher logits are fine.
    needs_live_teacher = False

    def __init__(self, pairs: list[list[str]] | list[tuple[str, str]], weight: float = 1.0) -> None:
        super().__init__(weight)
        self.pairs = check_path_pairs(self.name, pairs)
        self.maps = nn.ModuleList()

    def prepare(self, context: TermContext) -> None:
        """Create the maps from the layers' shapes (once; later calls check the shapes)."""
        teacher = require_teacher(context, self.name)
        for index, (student_path, teacher_path) in enumerate(self.pairs):
            student_weight = weight_matrix(context.student, student_path, "student")
            teacher_weight = weight_matrix(teacher, teacher_path, "teacher")
            student_shape = (student_weight.shape[0], student_weight.shape[1])
            teacher_shape = (teacher_weight.shape[0], teacher_weight.shape[1])
            if index < len(self.maps):
                built = cast(WeightMap, self.maps[index]).shapes()
                if built != (student_shape, teacher_shape):
                    raise KDistillError(
                        f"weights: layers {student_path!r}/{teacher_path!r} have shapes "
                        f"{student_shape}/{teacher_shape} but the maps were built for "
                        f"{built[0]}/{built[1]}; build a new term for new models"
                    )
                continue
            self.maps.append(
                WeightMap(
                    student_shape,
                    teacher_shape,
                    device=student_weight.device,
                    dtype=student_weight.dtype,
                )
            )

    def forward(self, context: TermContext) -> torch.Tensor:
        self.prepare(context)
        teacher = require_teacher(context, self.name)
        errors = []
        maps = cast("Iterable[WeightMap]", self.maps)
        for (student_path, teacher_path), weight_map in zip(self.pairs, maps, strict=True):
            student_weight = weight_matrix(context.student, student_path, "student")
            teacher_weight = weight_matrix(teacher, teacher_path, "teacher").detach()
            errors.append(
                mapped_weight_error(
                    student_weight, teacher_weight, weight_map.row_map, weight_map.column_map
                )
            )
        return torch.stack(errors).sum()
