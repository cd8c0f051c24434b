"""Text classification and sentence embeddings on token ids.

A batch is int64 token ids ``[B, L]`` (padding = ``pad_token_id``; a model derives its
attention mask as ``ids != pad``), topic labels ``[B]`` (-100 for unlabelled transfer text)
and the examples' positions. Each batch is cut after its last real token, so a batch of short
quotations does not pay for the longest article's padding.

* ``text-classification``: logits ``[B, classes]``; accuracy, macro-F1, confusion.
* ``sentence-embedding``: a model outputs one vector per text; evaluation is the k-nearest-
  neighbour topic accuracy (cosine, leave-one-out) among the split's own texts, which needs no
  teacher and no trained probe. The study adds linear probes and agreement with the teacher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.data import Batch, BatchLoader, Split
from kdistill.errors import KDistillError
from kdistill.tasks.base import Evaluation, Meter, Task, register_task, run_on_example
from kdistill.tasks.classification import ClassEvaluation, evaluate_logits

__all__ = [
    "EmbeddingEvaluation",
    "SentenceEmbeddingTask",
    "TextClassEvaluation",
    "TextClassificationTask",
    "TokenBatchLoader",
    "knn_accuracy",
    "macro_f1",
    "predict_outputs",
]

PAD_TOKEN_ID = 0
"""MiniLM/BERT's ``[PAD]``; batches are trimmed after the last column holding another id."""
UNLABELLED = -100


def trim_padding(token_ids: torch.Tensor, pad_token_id: int = PAD_TOKEN_ID) -> torch.Tensor:
    """``token_ids`` without the trailing columns that are padding in every row."""
    real = (token_ids != pad_token_id).any(dim=0)
    if not bool(real.any()):
        return token_ids[:, :1]
    last = int(torch.nonzero(real).max()) + 1
    return token_ids[:, :last]


class TokenBatchLoader(BatchLoader):
    """:class:`BatchLoader` over int64 token ids, each batch cut after its last real token."""

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> Batch:
        batch = super().batch(index, generator)
        batch.inputs = trim_padding(batch.inputs)
        return batch


@torch.no_grad()
def predict_outputs(
    model: nn.Module, split: Split, batch_size: int = 64, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """``model``'s outputs for every text of ``split`` (no grad, trimmed batches), on the CPU."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(split), batch_size):
        chunk = trim_padding(split.inputs[start : start + batch_size]).to(device)
        outputs.append(model(chunk).float().cpu())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0)


def macro_f1(confusion: torch.Tensor) -> float:
    """Unweighted mean over classes of ``F1 = 2 TP / (2 TP + FP + FN)`` (``confusion[true,
    predicted]``); a class never true nor predicted counts as 0."""
    confusion = confusion.double()
    true_positives = confusion.diagonal()
    denominator = confusion.sum(dim=0) + confusion.sum(dim=1)
    scores = torch.where(denominator > 0, 2 * true_positives / denominator.clamp_min(1), 0.0)
    return float(scores.mean())


@dataclass
class TextClassEvaluation(ClassEvaluation):
    """Classification figures plus macro-F1 (BBC's topics are not balanced)."""

    def summary(self, with_details: bool = False) -> dict[str, Any]:
        result = super().summary(with_details)
        result["macro_f1"] = round(macro_f1(self.confusion), 6)
        return result


class _LabelledErrorMeter(Meter):
    """Training error over the labelled texts of each batch (unlabelled ones are skipped)."""

    def __init__(self, device: torch.device) -> None:
        self.errors = torch.zeros((), dtype=torch.long, device=device)
        self.seen = torch.zeros((), dtype=torch.long, device=device)

    def update(self, outputs: torch.Tensor, batch: Batch) -> None:
        labelled = batch.labels != UNLABELLED
        wrong = (outputs.detach().argmax(dim=1) != batch.labels) & labelled
        self.errors += wrong.sum()
        self.seen += labelled.sum()

    def summary(self) -> dict[str, float]:
        return {"error_rate": int(self.errors) / max(int(self.seen), 1)}

    def reduce(self, total: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.errors, self.seen = total(self.errors), total(self.seen)


class _TokenTask(Task):
    """What both text tasks share: token batches and a probe on one text."""

    batch_loader = TokenBatchLoader

    def check_split(self, split: Split, max_shift: int) -> None:
        if split.inputs.dtype != torch.int64:
            raise KDistillError(
                f"task {self.name} needs token ids, the data holds {split.inputs.dtype} "
                f"{list(split.inputs.shape[1:])}: use a text data set (data.name: bbc)"
            )

    def probe(self, model: nn.Module, split: Split, role: str) -> int:
        if split.inputs.dtype != torch.int64:
            raise KDistillError(
                f"task {self.name} needs token ids but the data holds {split.inputs.dtype} "
                "inputs: use a text data set (data.name: bbc) or task: classification"
            )
        example = trim_padding(split.inputs[:1])
        outputs = run_on_example(
            model,
            example,
            role,
            "give a text model (model.name: bert or minilm)",
            what="token ids",
            errors=(RuntimeError, ValueError, IndexError),
        )
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2:
            raise KDistillError(
                f"{role} ({type(model).__name__}) must return [batch, outputs] for token ids"
            )
        return int(outputs.shape[-1])


@register_task
class TextClassificationTask(_TokenTask):
    name = "text-classification"

    def meter(self, device: torch.device) -> Meter:
        return _LabelledErrorMeter(device)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> TextClassEvaluation:
        logits = predict_outputs(model, split, min(batch_size, 256), device)
        labelled = split.labels != UNLABELLED
        base = evaluate_logits(logits[labelled], split.labels[labelled], logits.shape[1])
        return TextClassEvaluation(base.errors, base.total, base.loss, base.confusion)


def knn_accuracy(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    k: int = 5,
    reference: torch.Tensor | None = None,
    reference_labels: torch.Tensor | None = None,
) -> float:
    """Share of texts whose ``k`` nearest neighbours by cosine (a majority vote, ties to the
    nearest) have their label. Without ``reference`` the neighbours come from the same set,
    each text left out of its own vote."""
    queries = F.normalize(embeddings.float(), dim=-1)
    leave_out = reference is None
    keys = queries if reference is None else F.normalize(reference.float(), dim=-1)
    key_labels = labels if reference_labels is None else reference_labels
    similarity = queries @ keys.T
    if leave_out:
        similarity.fill_diagonal_(-float("inf"))
    nearest = similarity.topk(min(k, keys.shape[0] - int(leave_out)), dim=1).indices
    votes = key_labels[nearest]  # [N, k], nearest first
    classes = int(max(int(key_labels.max()), int(labels.max()))) + 1
    counts = F.one_hot(votes, classes).sum(dim=1).float()
    # Ties go to the class of the nearer neighbour: add a tiny bonus decreasing with rank.
    rank_bonus = (
        F.one_hot(votes, classes).float()
        * torch.linspace(1e-3, 1e-4, votes.shape[1])[None, :, None]
    )
    predicted = (counts + rank_bonus.sum(dim=1)).argmax(dim=1)
    return float((predicted == labels).float().mean())


@dataclass
class EmbeddingEvaluation(Evaluation):
    errors: int
    total: int
    k: int

    def summary(self, with_details: bool = False) -> dict[str, Any]:
        return {
            "errors": self.errors,
            "total": self.total,
            "knn_accuracy": round(1 - self.errors / max(self.total, 1), 6),
            "k": self.k,
        }


class _NoMeter(Meter):
    """Embeddings have no training metric of their own (the losses are logged)."""

    def __init__(self, device: torch.device) -> None:
        self.seen = 0

    def update(self, outputs: Any, batch: Batch) -> None:
        self.seen += len(batch.labels)

    def summary(self) -> dict[str, float]:
        return {}

    def reduce(self, total: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.seen = int(total(torch.tensor(self.seen)))


@register_task
class SentenceEmbeddingTask(_TokenTask):
    name = "sentence-embedding"
    neighbours = 5

    def meter(self, device: torch.device) -> Meter:
        return _NoMeter(device)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> EmbeddingEvaluation:
        embeddings = predict_outputs(model, split, min(batch_size, 256), device)
        labelled = split.labels != UNLABELLED
        accuracy = knn_accuracy(embeddings[labelled], split.labels[labelled], self.neighbours)
        total = int(labelled.sum())
        return EmbeddingEvaluation(round((1 - accuracy) * total), total, self.neighbours)
