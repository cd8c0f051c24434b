"""Measurements the hinton-mnist report makes on finished stages: the bias-shift search of the
missing-class transfer sets, mean and spread over seeds, and the models' size and latency."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from kdistill.data import DataSet, Split
from kdistill.engine import load_model
from kdistill.studies.stages import StageResult
from kdistill.tasks import evaluate_logits, predict_logits


def search_bias_shift(
    logits: torch.Tensor, labels: torch.Tensor, classes: list[int], candidates: torch.Tensor
) -> tuple[float, list[int]]:
    """The shift (added to the logits of ``classes``) with the fewest errors on held-out data.

    Hinton et al. tuned the shift on the test set; here it is chosen on a validation split
    carved from the training data. Ties go to the smallest absolute shift.
    """
    errors = []
    for shift in candidates.tolist():
        shifted = logits.clone()
        shifted[:, classes] += shift
        errors.append(int((shifted.argmax(dim=1) != labels).sum()))
    best = min(range(len(errors)), key=lambda i: (errors[i], abs(candidates[i].item())))
    return float(candidates[best]), errors


def _shifted_test(
    logits: torch.Tensor, labels: torch.Tensor, classes: list[int], shift: float
) -> dict[str, Any]:
    shifted = logits.clone()
    shifted[:, classes] += shift
    return evaluate_logits(shifted, labels).summary()


def missing_class_study(
    stage: StageResult,
    dataset: DataSet,
    validation: Split,
    classes: list[int],
    candidates: torch.Tensor,
    paper_shift: float,
) -> dict[str, Any]:
    """Test errors of a student that never saw ``classes``, before and after the bias shift
    searched on ``validation`` and the paper's shift."""
    model, _ = load_model(stage.model_path())
    validation_logits = predict_logits(model, validation)
    test_logits = predict_logits(model, dataset.test)
    found, curve = search_bias_shift(validation_logits, validation.labels, classes, candidates)
    return {
        "classes_shifted": classes,
        "before": _shifted_test(test_logits, dataset.test.labels, classes, 0.0),
        "searched_shift": found,
        "after_searched_shift": _shifted_test(test_logits, dataset.test.labels, classes, found),
        "paper_shift": paper_shift,
        "after_paper_shift": _shifted_test(test_logits, dataset.test.labels, classes, paper_shift),
        "validation_curve": {"shifts": candidates.tolist(), "errors": curve},
        "train_examples": None,
    }


def mean_std(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "runs": len(values),
        "values": values,
    }


def model_card(path: Path, members: list[Path] | None = None) -> dict[str, Any]:
    """Parameters, bytes on disk and CPU inference latency at batch 1 and 256 (median of runs)."""
    paths = members or [path]
    models = [load_model(p)[0].eval() for p in paths]
    parameters = sum(sum(t.numel() for t in m.parameters()) for m in models)
    size = sum(p.stat().st_size for p in paths)
    latency = {}
    for batch_size in (1, 256):
        inputs = torch.rand(batch_size, 1, 28, 28)
        timings = []
        with torch.inference_mode():
            for _ in range(5):
                for m in models:
                    m(inputs)
            for _ in range(30 if batch_size == 1 else 10):
                started = time.perf_counter()
                for m in models:
                    m(inputs)
                timings.append(time.perf_counter() - started)
        latency[f"batch_{batch_size}_ms"] = 1000 * statistics.median(timings)
    return {"parameters": parameters, "bytes_on_disk": size, **latency}
