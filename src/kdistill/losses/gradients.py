"""Attention transfer: match where the networks look, by activations or by input gradients.

Reference: S. Zagoruyko, N. Komodakis, "Paying More Attention to Attention: Improving the
Performance of Convolutional Neural Networks via Attention Transfer", ICLR 2017.

* Activation-based (section 3.1): a layer's attention map is ``Q = vec(F(A))`` with
  ``F(A) = sum_c |A_c|^p`` over the channels ``A_c`` of its output, and the loss (eq. 2) is
  ``beta/2 * sum_j || Q_S^j / ||Q_S^j||_2 - Q_T^j / ||Q_T^j||_2 ||_2`` over layer pairs ``j``.
* Gradient-based (section 3.2): the attention is the gradient of the loss with respect to the
  input, ``J = dL/dx``, and the student is trained to make ``J_S`` close to ``J_T``.

Here each term returns the sum over pairs (activation-based) or the single distance
(gradient-based) averaged over the batch; the paper's ``beta/2`` is the term's ``weight``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.errors import KDistillError
from kdistill.losses.base import FeatureRequest, LossTerm, TermContext, register_term
from kdistill.losses.feature_terms import (
    captured_feature,
    check_path_pairs,
    require_labels,
    require_teacher,
    resize_to,
)


def attention_map(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``F(A) = sum_c |A_c|^p`` (AT section 3.1) of a ``[B, C, H, W]`` output: ``[B, 1, H, W]``."""
    return feature.abs().pow(p).sum(dim=1, keepdim=True)


def attention_distance(
    student_feature: torch.Tensor,
    teacher_feature: torch.Tensor,
    p: float = 2.0,
    squared: bool = False,
) -> torch.Tensor:
    """AT eq. 2 for one layer pair: ``|| Q_S/||Q_S||_2 - Q_T/||Q_T||_2 ||_2``, batch mean.

    The student's attention map is resized bilinearly to the teacher's ``H x W`` before both
    are flattened and L2-normalised. With ``squared=True`` the distance is instead the mean over
    map positions of the squared difference, the form the paper's experiments use (``beta`` of
    ``10^3`` divided by the attention-map size and the batch size); it is smooth where the
    maps agree, whereas the norm's gradient is undefined there.
    """
    teacher_map = attention_map(teacher_feature, p)
    student_map = resize_to(attention_map(student_feature, p), teacher_map)
    student_q = F.normalize(student_map.flatten(1), p=2, dim=1)
    teacher_q = F.normalize(teacher_map.flatten(1), p=2, dim=1)
    difference = student_q - teacher_q
    if squared:
        return difference.pow(2).mean()
    return torch.linalg.vector_norm(difference, ord=2, dim=1).mean()


@register_term
class AttentionTransferLoss(LossTerm):
    """Activation-based attention transfer (AT, ICLR 2017, eq. 2) over pairs of layers.

    ``pairs`` lists ``[student_path, teacher_path]`` of modules with ``[B, C, H, W]``
    outputs (channel counts may differ: the attention map sums over channels). ``p`` is the
    exponent of ``sum_c |A_c|^p`` (the paper uses 2). The loss is the sum over pairs of the
    batch-mean L2 distance between normalised maps, or of the mean squared difference with
    ``squared=True`` (see :func:`attention_distance`). The paper's ``beta/2`` is the weight.
    """

    name = "at"
    needs_live_teacher = True

    def __init__(
        self,
        pairs: list[list[str]] | list[tuple[str, str]],
        weight: float = 1.0,
        p: float = 2.0,
        squared: bool = False,
    ) -> None:
        super().__init__(weight)
        self.pairs = check_path_pairs(self.name, pairs)
        if p <= 0:
            raise KDistillError(f"at: the attention exponent p must be > 0, got {p}")
        self.p = float(p)
        self.squared = bool(squared)

    def reads(self) -> list[FeatureRequest]:
        requests: list[FeatureRequest] = []
        for student_path, teacher_path in self.pairs:
            requests += [
                FeatureRequest("student", student_path),
                FeatureRequest("teacher", teacher_path),
            ]
        return requests

    def forward(self, context: TermContext) -> torch.Tensor:
        distances = []
        for student_path, teacher_path in self.pairs:
            student = captured_feature(context, self.name, "student", student_path)
            teacher = captured_feature(context, self.name, "teacher", teacher_path)
            if student.dim() != 4 or teacher.dim() != 4 or student.shape[0] != teacher.shape[0]:
                raise KDistillError(
                    f"at: layers {student_path!r} {tuple(student.shape)} and {teacher_path!r} "
                    f"{tuple(teacher.shape)} must both output [batch, channels, height, width] "
                    "for the same batch"
                )
            distances.append(attention_distance(student, teacher, self.p, self.squared))
        return torch.stack(distances).sum()


def _logits_of(model: nn.Module, inputs: torch.Tensor, side: str) -> torch.Tensor:
    """``model(inputs)`` as ``[batch, classes]``; an ensemble's ``[members, batch, classes]``
    is reduced to its mean logits, as :attr:`TermContext.teacher_logits` does."""
    output = model(inputs)
    if isinstance(output, torch.Tensor) and output.dim() == 3:
        output = output.mean(dim=0)
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        raise KDistillError(
            f"grad_at: the {side} must return logits of shape [batch, classes] (or "
            "[members, batch, classes]) from model(inputs)"
        )
    return output


def input_gradients(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, create_graph: bool, side: str
) -> torch.Tensor:
    """``J = dL/dx`` for ``L`` the cross-entropy of ``model`` on ``(inputs, labels)``.

    The cross-entropy is summed over the batch, so row ``b`` of ``J`` is the gradient of
    example ``b``'s own loss. ``create_graph=True`` keeps the graph of the gradient itself so
    a loss on ``J`` can be backpropagated into the model (double backpropagation).
    """
    with torch.enable_grad():
        leaf = inputs.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(_logits_of(model, leaf, side), labels, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, leaf, create_graph=create_graph)
    return gradient


def input_gradient_distance(
    student_gradient: torch.Tensor, teacher_gradient: torch.Tensor
) -> torch.Tensor:
    """``||J_S - J_T||_2^2`` per example, averaged over the batch."""
    return (student_gradient - teacher_gradient).pow(2).flatten(1).sum(dim=1).mean()


@register_term
class InputGradientLoss(LossTerm):
    """Gradient-based attention transfer (AT, ICLR 2017, section 3.2).

    Runs its own forward passes of ``context.student`` and ``context.teacher`` on copies of
    ``context.inputs`` that require gradients, takes ``J_S = dCE_S/dx`` with the graph kept
    (double backpropagation) and ``J_T = dCE_T/dx`` as a constant, and returns
    ``||J_S - J_T||_2^2`` per example, averaged over the batch; the paper's ``beta/2`` is the
    weight. An ensemble teacher's gradient is that of its mean logits. The paper writes the
    plain L2 norm; the squared norm used here is smooth where the gradients agree. The extra
    student pass updates BatchNorm running statistics again in training mode. Inputs must be
    floating point (images, not token ids).
    """

    name = "grad_at"
    needs_live_teacher = True

    def forward(self, context: TermContext) -> torch.Tensor:
        teacher = require_teacher(context, self.name)
        labels = require_labels(context, self.name)
        if not context.inputs.is_floating_point():
            raise KDistillError(
                "grad_at differentiates with respect to the inputs, which must be floating point "
                f"(got {context.inputs.dtype}); drop the term for token-id inputs"
            )
        student_gradient = input_gradients(
            context.student, context.inputs, labels, create_graph=True, side="student"
        )
        teacher_gradient = input_gradients(
            teacher, context.inputs, labels, create_graph=False, side="teacher"
        )
        return input_gradient_distance(student_gradient, teacher_gradient.detach())
