"""What the language benchmark trains: the MiniLM teacher fine-tuned on BBC News, the small
BERT student alone, each distillation variant, and the embedding-distilled student; every
run config comes from ``configs/language/*.yaml`` (the files a user runs by hand), with the
seed, the epochs and the teacher's file filled in here."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kdistill.config import RunConfig, parse_config
from kdistill.studies.command import bench_command_line

VARIANTS: dict[str, str] = {
    "student-alone": "Student alone (labels)",
    "kd": "KD (soft targets + labels)",
    "kd-fortunes": "KD, transfer set + 2,000 fortunes",
    "tinybert": "KD + TinyBERT hidden MSE",
    "minilm": "KD + MiniLM attention/value KL",
    "distilbert": "KD + DistilBERT hidden cosine",
}
"""Classification students, by config file name; the first is the baseline."""

EMBEDDING = "embedding"
TEACHER = "teacher"


@dataclass(frozen=True)
class LanguageBenchSettings:
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    student_epochs: int = 4
    teacher_epochs: int = 2
    variants: tuple[str, ...] = tuple(VARIANTS)
    embedding: bool = True
    train_fraction: float = 1.0
    """Below 1: a stratified share of the training articles (smoke runs)."""
    work_dir: Path = Path("runs/bench-language")
    report_dir: Path = Path("docs/results/language")
    latency_texts: int = 64
    """Test articles each model's CPU latency is timed on (one article per call)."""
    part: str = "all"
    """``encoder``, ``lm`` or ``all``."""
    lm_epochs: int = 6
    lm_seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the causal-LM students (each ~10-20 min per variant on one CPU core)."""
    lm_train_fraction: float = 0.3
    """Share of the training articles the causal-LM students see (the teacher is slow)."""

    def command_line(self) -> str:
        """The ``kdistill bench language`` invocation these settings come from (defaults left
        out)."""
        return bench_command_line(
            "OMP_NUM_THREADS=1 kdistill bench language",
            self,
            {
                "seeds": "seeds",
                "variants": "variants",
                "embedding": "no-embedding",
                "part": "part",
                "student_epochs": "student-epochs",
                "teacher_epochs": "teacher-epochs",
                "train_fraction": "train-fraction",
                "lm_epochs": "lm-epochs",
                "lm_seeds": "lm-seeds",
                "lm_train_fraction": "lm-train-fraction",
                "work_dir": "work-dir",
                "report_dir": "output-dir",
            },
        )

    def identity(self) -> dict[str, Any]:
        return {
            "student_epochs": self.student_epochs,
            "teacher_epochs": self.teacher_epochs,
            "train_fraction": self.train_fraction,
            "lm_epochs": self.lm_epochs,
            "lm_seeds": list(self.lm_seeds),
            "lm_train_fraction": self.lm_train_fraction,
        }


def raw_config(name: str) -> dict[str, Any]:
    """``configs/language/<name>.yaml`` as a dict (package data beside this study)."""
    text = resources.files("kdistill.studies.language").joinpath(f"configs/{name}.yaml")
    loaded = yaml.safe_load(text.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _common(raw: dict[str, Any], settings: LanguageBenchSettings, epochs: int) -> dict[str, Any]:
    raw["train"]["epochs"] = epochs
    raw["train"]["progress"] = False
    if settings.train_fraction < 1:
        raw["data"]["train_fraction"] = settings.train_fraction
    return raw


def teacher_config(settings: LanguageBenchSettings) -> RunConfig:
    return parse_config(_common(raw_config(TEACHER), settings, settings.teacher_epochs))


def student_config(
    variant: str, seed: int, teacher_file: Path, settings: LanguageBenchSettings
) -> RunConfig:
    """The run config of one student: its yaml, this seed, the benchmark's teacher."""
    raw = _common(raw_config(variant), settings, settings.student_epochs)
    raw["seed"] = seed
    if "distill" in raw and variant != EMBEDDING:
        raw["distill"]["teachers"] = [{"checkpoint": str(teacher_file)}]
    return parse_config(raw, f"configs/language/{variant}.yaml")
