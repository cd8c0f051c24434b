"""``kdistill bench language``: distilling a fine-tuned MiniLM into a small BERT on BBC News
topics (each loss term alone with soft targets), and embedding distillation of the pretrained
MiniLM's sentence embeddings; resumable, one ``run_once`` marker per unit."""

from kdistill.studies.language.plan import LanguageBenchSettings
from kdistill.studies.language.runner import run_language_benchmark

__all__ = ["LanguageBenchSettings", "run_language_benchmark"]
