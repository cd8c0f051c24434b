"""Sampling a causal LM's continuations (GKD's on-policy sequences): drawn from the model's
own distribution at a temperature (no top-k or top-p), reproducible from a seed without
touching the global random state, and padded after an end-of-text."""

import pytest
import torch
from torch import nn

from kdistill.models.causal_lm import sample_continuations

pytest.importorskip("transformers")
from kdistill.models import create_model  # noqa: E402


def _model(vocab: int = 120):
    torch.manual_seed(0)
    return create_model("llama", vocab_size=vocab, max_positions=32, layers=1, hidden=32, heads=2)


def test_samples_follow_the_model_distribution_at_the_temperature_without_truncation():
    model, rows, temperature = _model(), 4000, 0.5
    prompts = torch.tensor([[5, 9, 17]]).expand(rows, 3).contiguous()
    first = sample_continuations(model, prompts, 1, temperature, seed=0)[:, 3]
    with torch.no_grad():
        expected = torch.softmax(model(prompts[:1])[0, -1] / temperature, -1)
    observed = torch.bincount(first, minlength=120).double() / rows
    assert 0.5 * (observed - expected.double()).abs().sum() < 0.08  # total variation
    # generate()'s default top_k=50 would leave no sample outside the 50 likeliest ids.
    outside = expected.argsort(descending=True)[50:]
    assert expected[outside].sum() > 0.1
    assert abs(float(observed[outside].sum() - expected[outside].sum())) < 0.03


def test_draws_depend_on_the_seed_only_and_leave_the_global_random_state():
    model = _model()
    prompts = torch.randint(1, 120, (8, 4))
    torch.manual_seed(123)
    first = sample_continuations(model, prompts, 10, seed=7)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(sample_continuations(model, prompts, 10, seed=7), first)
    assert torch.equal(torch.rand(3), after)
    assert not torch.equal(sample_continuations(model, prompts, 10, seed=8), first)
    assert model.training  # restored after sampling in eval mode


class _Counter(nn.Module):
    """Not a transformers model: the next id is the last one + 1, and id 0 (end of text)
    after a 6."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        following = torch.where(ids[:, -1:] == 6, 0, ids[:, -1:] + 1)
        logits = torch.full((ids.shape[0], ids.shape[1], 20), -1e4)
        logits[:, -1].scatter_(1, following, 0.0)
        return logits


def test_a_plain_model_samples_by_a_loop_and_a_row_is_padded_after_its_end_of_text():
    prompts = torch.tensor([[1, 2], [3, 4], [9, 10]])
    ids = sample_continuations(_Counter(), prompts, 5, seed=0)
    assert ids.tolist() == [
        [1, 2, 3, 4, 5, 6, 0],
        [3, 4, 5, 6, 0, 0, 0],
        [9, 10, 11, 12, 13, 14, 15],
    ]
