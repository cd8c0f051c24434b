"""What the specialists study measures of the trained models: the generalist alone against
generalist + specialists on the test pairs (Tables 3 and 4 of Hinton et al. 2015, section 5,
and what each specialist adds among its own classes), and the parameters and CPU latency of
generalist, ensemble and distilled model."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from kdistill.config import SpecialistsConfig
from kdistill.data import TrainingData
from kdistill.engine import load_model
from kdistill.files import run_once
from kdistill.methods.common import file_sha256
from kdistill.models import count_parameters
from kdistill.studies.stages import specialists_method as sp
from kdistill.tasks import predict_logits

__all__ = ["ensemble_unit", "method_identity", "model_cards", "model_logits"]


def method_identity(method: SpecialistsConfig, *keys: str) -> dict[str, Any]:
    return {key: getattr(method, key) for key in keys}


def model_logits(paths: list[Path], split: Any) -> list[torch.Tensor]:
    return [predict_logits(load_model(path)[0], split) for path in paths]


def _in_group(
    generalist: torch.Tensor, specialists: list[torch.Tensor], groups: list[list[int]], split: Any
) -> list[dict[str, Any]]:
    """What each specialist adds, on the pairs of its own classes: its accuracy among its
    classes beside the generalist's restricted to them, and how often it calls its own classes
    dustbin (and the others not dustbin)."""
    rows = []
    for logits, group in zip(specialists, groups, strict=True):
        classes = torch.tensor(group)
        own = torch.isin(split.labels, classes)
        labels = split.labels[own]
        specialist = classes[logits[own][:, :-1].argmax(dim=1)]
        restricted = classes[generalist[own][:, classes].argmax(dim=1)]
        rows.append(
            {
                "examples": int(own.sum()),
                "specialist_accuracy": float((specialist == labels).float().mean()),
                "generalist_accuracy": float((restricted == labels).float().mean()),
                "own_called_dustbin": float((logits[own].argmax(1) == len(group)).float().mean()),
                "others_not_dustbin": float((logits[~own].argmax(1) != len(group)).float().mean()),
            }
        )
    return rows


def ensemble_unit(
    work_dir: Path,
    seed: int,
    generalist: Path,
    specialists: list[Path],
    groups: list[list[int]],
    data: TrainingData,
    method: SpecialistsConfig,
) -> dict[str, Any]:
    """Tables 3 and 4 on the test pairs: the generalist alone vs generalist + specialists."""
    identity = {
        "generalist_sha256": file_sha256(generalist),
        "specialists_sha256": [file_sha256(path) for path in specialists],
        **method_identity(method, "top_n", "inference_steps", "inference_lr"),
        "measures": 2,
    }

    def compute() -> dict[str, Any]:
        test = data.eval_splits["test"]
        started = time.perf_counter()
        generalist_logits, *specialist_logits = model_logits([generalist, *specialists], test)
        combined, active = sp.combined_log_probs(
            generalist_logits,
            specialist_logits,
            groups,
            top_n=method.top_n,
            steps=method.inference_steps,
            lr=method.inference_lr,
        )
        seconds = time.perf_counter() - started
        alone = torch.log_softmax(generalist_logits, dim=1)
        return {
            "generalist": sp.table_3_row(alone, test.labels, groups),
            "ensemble": sp.table_3_row(combined, test.labels, groups),
            "table_4": sp.gain_by_coverage(alone, combined, test.labels, groups),
            "active_per_example": float(active.float().sum(dim=1).mean()),
            "examples_with_active": int(active.any(dim=1).sum()),
            "changed_predictions": int((alone.argmax(1) != combined.argmax(1)).sum()),
            "specialists_in_group": _in_group(generalist_logits, specialist_logits, groups, test),
            "test_seconds": seconds,
        }

    # New inference settings or measures recompute this (cheap) unit; other models refuse.
    strict = {"generalist_sha256", "specialists_sha256"}
    result, _ = run_once(work_dir / f"ensemble-s{seed}", identity, compute, must_match=strict)
    return result


def _latency(models: list[torch.nn.Module], run: Any, example: torch.Tensor) -> float:
    """Median milliseconds of ``run(models, inputs)`` on one example."""
    timings = []
    with torch.inference_mode():
        for attempt in range(25):
            started = time.perf_counter()
            run(models, example)
            if attempt >= 5:
                timings.append(time.perf_counter() - started)
    return 1000 * statistics.median(timings)


def model_cards(
    generalist: Path,
    specialists: list[Path],
    distilled: Path,
    groups: list[list[int]],
    data: TrainingData,
    method: SpecialistsConfig,
) -> dict[str, Any]:
    """Parameters and CPU latency (one example, one thread) of generalist, ensemble, distilled."""
    general = load_model(generalist)[0].eval()
    experts = [load_model(path)[0].eval() for path in specialists]
    student = load_model(distilled)[0].eval()
    example = data.eval_splits["test"].encoded(0, 1)

    def single(models: list[torch.nn.Module], inputs: torch.Tensor) -> None:
        models[0](inputs)

    def ensemble(models: list[torch.nn.Module], inputs: torch.Tensor) -> None:
        # Every specialist runs (a batch would need them anyway); then eq. 5 is solved.
        logits = [model(inputs) for model in models]
        sp.combined_log_probs(
            logits[0], logits[1:], groups, top_n=method.top_n, steps=method.inference_steps
        )

    return {
        "generalist": {
            "parameters": count_parameters(general),
            "latency_ms": _latency([general], single, example),
        },
        "ensemble": {
            "parameters": count_parameters(general) + sum(count_parameters(m) for m in experts),
            "latency_ms": _latency([general, *experts], ensemble, example),
        },
        "distilled": {
            "parameters": count_parameters(student),
            "latency_ms": _latency([student], single, example),
        },
    }
