"""The language-modeling task's probe: the vocabulary a causal LM predicts, and a one-line
error for a model that cannot take token ids or returns no next-token logits."""

import pytest
import torch
from torch import nn

from kdistill.data import Split
from kdistill.errors import KDistillError
from kdistill.tasks import create_task


class _Bigram(nn.Module):
    def __init__(self, vocab: int = 7) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, vocab)

    def forward(self, ids):
        return self.embed(ids)


def _split(ids):
    return Split(torch.tensor(ids), torch.zeros(len(ids), dtype=torch.long))


def test_probe_reads_the_vocabulary_from_the_logits():
    assert create_task("language-modeling").probe(_Bigram(7), _split([[1, 2, 0]]), "x") == 7


def test_a_token_id_beyond_the_embedding_is_a_one_line_error():
    with pytest.raises(
        KDistillError, match=r"student \(_Bigram\) rejects token ids of shape \[1, 3\]"
    ):
        create_task("language-modeling").probe(_Bigram(3), _split([[1, 5, 2]]), "student")


def test_a_model_without_next_token_logits_is_refused():
    with pytest.raises(KDistillError, match="next-token logits"):
        create_task("language-modeling").probe(nn.Identity(), _split([[1, 2]]), "teacher")
