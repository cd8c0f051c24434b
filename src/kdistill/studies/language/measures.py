"""What the language benchmark measures beyond the training runs' own metrics: CPU latency
and parameters, and the probes of a sentence-embedding student (linear probe and k-NN topic
accuracy on BBC, neighbour agreement with the teacher's embeddings)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.data import DataSet, Split
from kdistill.engine.checkpoint import load_model
from kdistill.models import count_parameters, create_model
from kdistill.models.causal_lm import PAD_TOKEN_ID, greedy_continuation
from kdistill.tasks.text_classification import knn_accuracy, predict_outputs, trim_padding

__all__ = [
    "embedding_probes",
    "generation_latency",
    "latency_and_size",
    "linear_probe_accuracy",
    "neighbour_agreement",
]


@torch.no_grad()
def latency_and_size(model: nn.Module, split: Split, texts: int) -> dict[str, Any]:
    """Median and mean wall time of one forward pass on one article (batch of 1, one CPU
    thread, no grad), over ``texts`` test articles after 3 warm-up calls; and parameters."""
    model.eval()
    torch.set_num_threads(1)
    examples = [trim_padding(split.inputs[i : i + 1]) for i in range(min(texts, len(split)))]
    for example in examples[:3]:
        model(example)
    times = []
    for example in examples:
        started = time.perf_counter()
        model(example)
        times.append(time.perf_counter() - started)
    return {
        "parameters": count_parameters(model),
        "median_ms": round(1000 * statistics.median(times), 2),
        "mean_ms": round(1000 * statistics.fmean(times), 2),
        "articles": len(examples),
        "tokens_per_article": round(
            statistics.fmean(int(example.shape[1]) for example in examples), 1
        ),
    }


@torch.no_grad()
def generation_latency(
    model: nn.Module, prompts: Sequence[Sequence[int]], new_tokens: int = 16, repeats: int = 5
) -> dict[str, Any]:
    """CPU wall time per generated token of a causal LM at batch 1 (one thread, no grad,
    greedy): each prompt is continued by exactly ``new_tokens`` tokens ``repeats`` times after
    one warm-up; the median over all runs of (run time / ``new_tokens``). A ``transformers``
    model generates with its key-value cache, any other one reruns the whole sequence."""
    model.eval()
    torch.set_num_threads(1)
    lm = getattr(model, "lm", None)

    def generate(ids: list[int]) -> None:
        if lm is not None and hasattr(lm, "generate"):
            inputs = torch.tensor([ids])
            lm.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,  # no early end-of-text: always new_tokens steps
                use_cache=True,
                pad_token_id=PAD_TOKEN_ID,
                eos_token_id=PAD_TOKEN_ID,
            )
        else:
            greedy_continuation(model, ids, new_tokens)

    times = []
    for prompt in prompts:
        generate(list(prompt))
        for _ in range(repeats):
            started = time.perf_counter()
            generate(list(prompt))
            times.append((time.perf_counter() - started) / new_tokens)
    return {
        "ms_per_token": round(1000 * statistics.median(times), 2),
        "new_tokens": new_tokens,
        "runs": len(times),
    }


def linear_probe_accuracy(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    steps: int = 300,
) -> float:
    """Test accuracy of a multinomial logistic regression (L-BFGS, weight decay 1e-4) trained
    on frozen, standardised embeddings of the training articles."""
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    x_train, x_test = (train - mean) / std, (test - mean) / std
    torch.manual_seed(0)
    probe = nn.Linear(train.shape[1], int(train_labels.max()) + 1)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(x_train), train_labels) + 1e-4 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float((probe(x_test).argmax(dim=1) == test_labels).float().mean())


def neighbour_agreement(student: torch.Tensor, teacher: torch.Tensor, k: int = 10) -> float:
    """Mean overlap of each text's ``k`` nearest neighbours (cosine, itself left out) under
    the student's and the teacher's embeddings: 1 when the student orders the set alike."""

    def neighbours(embeddings: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(embeddings.float(), dim=-1)
        similarity = unit @ unit.T
        similarity.fill_diagonal_(-float("inf"))
        return similarity.topk(k, dim=1).indices

    ours, theirs = neighbours(student), neighbours(teacher)
    overlap = [
        len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(ours, theirs, strict=True)
    ]
    return float(statistics.fmean(overlap))


def embedding_probes(model_file: Path, dataset: DataSet) -> dict[str, Any]:
    """Linear-probe and 5-NN topic accuracy on BBC (train articles -> test articles) of the
    student at ``model_file`` and of the pretrained MiniLM it learned from, and their test
    neighbour agreement (k = 10)."""
    labelled = dataset.train.labels >= 0
    train = dataset.train.subset(labelled)
    models = {
        "student": load_model(model_file)[0],
        "teacher": create_model("minilm", output="embedding"),
    }
    result: dict[str, Any] = {}
    embedded = {}
    for role, model in models.items():
        train_vectors = predict_outputs(model, train, 64)
        test_vectors = predict_outputs(model, dataset.test, 64)
        embedded[role] = test_vectors
        result[role] = {
            "linear_probe_accuracy": round(
                linear_probe_accuracy(
                    train_vectors, train.labels, test_vectors, dataset.test.labels
                ),
                6,
            ),
            "knn_accuracy": round(
                knn_accuracy(test_vectors, dataset.test.labels, 5, train_vectors, train.labels), 6
            ),
        }
    result["neighbour_agreement_k10"] = round(
        neighbour_agreement(embedded["student"], embedded["teacher"]), 6
    )
    return result
