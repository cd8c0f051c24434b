"""The language benchmark's CPU latency per generated token (batch 1): every timed run
generates exactly the tokens it divides by, a warm-up run is not timed, and the figure is the
median over all runs."""

import pytest
import torch
from torch import nn

from kdistill.studies.language import measures
from kdistill.studies.language.measures import generation_latency

pytest.importorskip("transformers")
from kdistill.models import create_model  # noqa: E402


def test_a_transformers_model_generates_exactly_the_timed_tokens_with_its_cache(monkeypatch):
    torch.manual_seed(0)
    model = create_model("llama", vocab_size=40, max_positions=32, layers=1, hidden=16, heads=2)
    lengths, caches = [], []
    generate = model.lm.generate

    def spy(**kwargs):
        output = generate(**kwargs)
        lengths.append(output.shape[1] - kwargs["input_ids"].shape[1])
        caches.append(kwargs["use_cache"])
        return output

    monkeypatch.setattr(model.lm, "generate", spy)
    # A model that always ends the text at once still produces all 6 timed tokens.
    with torch.no_grad():
        model.lm.lm_head.weight[0] += 50.0  # tied: the end-of-text id dominates every step
    result = generation_latency(model, [[5, 6, 7], [8, 9]], new_tokens=6, repeats=3)
    assert lengths == [6] * (2 * (1 + 3)) and all(caches)
    assert result["runs"] == 6 and result["new_tokens"] == 6 and result["ms_per_token"] > 0


class _Counter(nn.Module):
    """Not a transformers model: counts its forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.zeros(ids.shape[0], ids.shape[1], 10)


def test_a_plain_model_runs_once_per_token_and_the_median_is_per_token(monkeypatch):
    model = _Counter()
    clock = iter(float(t) for t in range(1000))
    # Each timed run takes one fake second: the median per token is 1000 / 4 ms.
    monkeypatch.setattr(measures.time, "perf_counter", lambda: next(clock))
    result = generation_latency(model, [[1, 2]], new_tokens=4, repeats=5)
    assert model.calls == (1 + 5) * 4
    assert result == {"ms_per_token": 250.0, "new_tokens": 4, "runs": 5}


def test_the_benchmark_measures_each_model_once(tmp_path):
    from kdistill.studies.language.lm import PROMPTS, _generation_latency

    built = []

    def model() -> nn.Module:
        built.append(1)
        return _Counter()

    def tokenizer(text: str) -> dict:
        return {"input_ids": [len(text) % 10, 1]}

    first = _generation_latency(tmp_path / "unit", "counter", model, tokenizer)
    again = _generation_latency(tmp_path / "unit", "counter", model, tokenizer)
    assert first == again and len(built) == 1
    assert first["runs"] == len(PROMPTS) * 5 and first["new_tokens"] == 16
