"""The causal-LM half of ``kdistill bench language``: SmolLM2-135M distilled into a 4-layer
Llama on BBC text with each token-level objective; held-out perplexity, teacher-student KL
and greedy continuations of a few prompts, each a ``run_once`` unit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdistill.config import RunConfig, parse_config
from kdistill.data import DataSet, Split
from kdistill.data.text import load_smollm2_tokenizer
from kdistill.engine.checkpoint import load_model
from kdistill.files import run_once
from kdistill.models import count_parameters, create_model
from kdistill.models.causal_lm import greedy_continuation
from kdistill.studies.language.measures import generation_latency
from kdistill.studies.language.plan import LanguageBenchSettings, raw_config
from kdistill.studies.stages import run_stage
from kdistill.tasks.language_modeling import LanguageModelingTask
from kdistill.tasks.text_classification import trim_padding

__all__ = ["LM_VARIANTS", "PROMPTS", "run_lm_part"]

LM_VARIANTS: dict[str, str] = {
    "lm-ce": "Student alone (next-token CE)",
    "lm-forward-kl": "Forward KL",
    "lm-reverse-kl": "Reverse KL",
    "lm-jsd": "JSD(0.5)",
    "lm-gkd": "GKD: JSD(0.5), half the batches on-policy",
}
PROMPTS = ("The government said on Monday that", "Shares in the company", "The new film")
"""Written for this report (not BBC text)."""
LATENCY_NEW_TOKENS = 16
LATENCY_REPEATS = 5
"""Generation latency: each prompt continued by 16 tokens, 5 timed runs after a warm-up."""
KL_TEXTS = 50
"""Test articles the teacher-student KL is measured on (the teacher is slow on a CPU)."""


def lm_config(variant: str, seed: int, settings: LanguageBenchSettings) -> RunConfig:
    raw = raw_config(variant)
    raw["seed"] = seed
    raw["train"]["epochs"] = settings.lm_epochs
    raw["train"]["progress"] = False
    raw["data"]["train_fraction"] = settings.lm_train_fraction
    return parse_config(raw, f"configs/language/{variant}.yaml")


@torch.no_grad()
def teacher_student_kl(teacher: nn.Module, student: nn.Module, split: Split) -> float:
    """Mean forward ``KL(teacher || student)`` per real next token over ``split``."""
    teacher.eval()
    student.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(split), 16):
        ids = trim_padding(split.inputs[start : start + 16])
        mask = ids[:, 1:] != 0
        teacher_log = F.log_softmax(teacher(ids)[:, :-1].float(), -1)
        student_log = F.log_softmax(student(ids)[:, :-1].float(), -1)
        per_token = (teacher_log.exp() * (teacher_log - student_log)).sum(-1)
        total += float((per_token * mask).sum())
        tokens += int(mask.sum())
    return total / max(tokens, 1)


def _continuations(model: nn.Module, tokenizer: Any, new_tokens: int = 16) -> list[str]:
    return [
        tokenizer.decode(greedy_continuation(model, tokenizer(prompt)["input_ids"], new_tokens))
        for prompt in PROMPTS
    ]


def run_lm_part(
    settings: LanguageBenchSettings, dataset_for: Any, teacher_cache: dict[str, nn.Module]
) -> dict[str, Any]:
    """Train every LM variant for each of ``settings.lm_seeds``, then measure it;
    ``dataset_for(config)`` loads data. Per variant: held-out perplexity, KL to the teacher
    and training time by seed; parameters, greedy continuations and generation latency of
    the first seed's student (the students of one variant share an architecture)."""
    work = settings.work_dir
    tokenizer = load_smollm2_tokenizer()
    results: dict[str, Any] = {"students": {}}
    test: Split | None = None
    for variant in LM_VARIANTS:
        record: dict[str, Any] = {"seeds": {}}
        for seed in settings.lm_seeds:
            config = lm_config(variant, seed, settings)
            dataset: DataSet = dataset_for(config)
            test = dataset.test
            stage = run_stage(f"{variant}-s{seed}", config, work, dataset)
            model_file = stage.run_dir / "student.safetensors"

            def measure(model_file: Path = model_file, split: Split = test) -> dict[str, Any]:
                student = load_model(model_file)[0]
                teacher = teacher_cache.setdefault("smollm2", create_model("smollm2"))
                return {
                    "kl_to_teacher": round(
                        teacher_student_kl(teacher, student, split.subset(torch.arange(KL_TEXTS))),
                        4,
                    ),
                    "parameters": count_parameters(student),
                    "continuations": _continuations(student, tokenizer),
                }

            # Named by the training unit (its digest), so other settings measure anew.
            measured = run_once(
                work / f"measure-{stage.run_dir.name}", {"model": str(model_file)}, measure
            )[0]
            record["seeds"][str(seed)] = {
                "test": stage.final["student"]["test"],
                "kl_to_teacher": measured["kl_to_teacher"],
                "seconds": round(stage.seconds, 1),
            }
            if "parameters" in record:
                continue

            def student(model_file: Path = model_file) -> nn.Module:
                return load_model(model_file)[0]

            record.update(
                parameters=measured["parameters"],
                continuations=measured["continuations"],
                generation=_generation_latency(
                    work / f"generation-latency-{stage.run_dir.name}",
                    str(model_file),
                    student,
                    tokenizer,
                ),
            )
        results["students"][variant] = record
    assert test is not None

    def measure_teacher(split: Split = test) -> dict[str, Any]:
        teacher = teacher_cache.setdefault("smollm2", create_model("smollm2"))
        evaluation = LanguageModelingTask().evaluate(teacher, split, 16, torch.device("cpu"))
        return {
            "test": evaluation.summary(),
            "parameters": count_parameters(teacher),
            "continuations": _continuations(teacher, tokenizer),
        }

    results["teacher"] = run_once(work / "measure-smollm2", {"what": "teacher"}, measure_teacher)[0]
    results["teacher"]["generation"] = _generation_latency(
        work / "generation-latency-smollm2",
        "teacher",
        lambda: teacher_cache.setdefault("smollm2", create_model("smollm2")),
        tokenizer,
    )
    return results


def _generation_latency(
    marker: Path, what: str, model: Callable[[], nn.Module], tokenizer: Any
) -> dict[str, Any]:
    """CPU time per generated token (batch 1) on the report's prompts, a ``run_once`` unit."""
    identity = {"model": what, "new_tokens": LATENCY_NEW_TOKENS, "repeats": LATENCY_REPEATS}
    prompts = [tokenizer(prompt)["input_ids"] for prompt in PROMPTS]
    return run_once(
        marker,
        identity,
        lambda: generation_latency(model(), prompts, LATENCY_NEW_TOKENS, LATENCY_REPEATS),
    )[0]
