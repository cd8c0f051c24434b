"""Language modelling: token ids in, next-token logits ``[B, T, vocab]`` out; the metric is
held-out perplexity ``exp(mean -log q(x_{t+1} | x_<=t))`` over the real next tokens."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.data import Batch, Split
from kdistill.errors import KDistillError
from kdistill.tasks.base import Evaluation, Meter, register_task, run_on_example
from kdistill.tasks.text_classification import PAD_TOKEN_ID, _TokenTask, trim_padding

__all__ = ["LanguageModelingTask", "PerplexityEvaluation", "next_token_losses"]


def next_token_losses(logits: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed ``-log q`` of every real next token and how many there are."""
    targets = ids[:, 1:]
    mask = targets != PAD_TOKEN_ID
    per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, reduction="none")
    return (per_token * mask).sum(), int(mask.sum())


@dataclass
class PerplexityEvaluation(Evaluation):
    nll_sum: float
    tokens: int

    def summary(self, with_details: bool = False) -> dict[str, Any]:
        mean = self.nll_sum / max(self.tokens, 1)
        # "errors" keeps the engine's one-line progress message; here it is the rounded nats.
        return {
            "loss": round(mean, 6),
            "perplexity": round(math.exp(mean), 4),
            "tokens": self.tokens,
            "errors": round(mean, 4),
        }


class _TokenMeter(Meter):
    def __init__(self, device: torch.device) -> None:
        self.texts = 0

    def update(self, outputs: Any, batch: Batch) -> None:
        self.texts += len(batch.labels)

    def summary(self) -> dict[str, float]:
        return {}

    def reduce(self, total: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.texts = int(total(torch.tensor(self.texts)))


@register_task
class LanguageModelingTask(_TokenTask):
    name = "language-modeling"

    def meter(self, device: torch.device) -> Meter:
        return _TokenMeter(device)

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> PerplexityEvaluation:
        was_training = model.training
        model.eval()
        total, tokens = 0.0, 0
        for start in range(0, len(split), batch_size):
            ids = trim_padding(split.inputs[start : start + batch_size]).to(device)
            summed, count = next_token_losses(model(ids), ids)
            total += float(summed)
            tokens += count
        model.train(was_training)
        return PerplexityEvaluation(total, tokens)

    def probe(self, model: nn.Module, split: Split, role: str) -> int:
        outputs = run_on_example(
            model,
            trim_padding(split.inputs[:1]),
            role,
            "use a causal LM over the data's tokenizer (model.name: llama)",
            what="token ids of shape",
            errors=(RuntimeError, ValueError, IndexError),
        )
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 3:
            raise KDistillError(
                f"{role} ({type(model).__name__}) must return next-token logits [batch, "
                "tokens, vocab] for task language-modeling: use a causal LM (model.name: llama)"
            )
        return int(outputs.shape[-1])
