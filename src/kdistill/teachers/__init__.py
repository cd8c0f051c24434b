"""Teachers (one model or an ensemble) and their cached logits."""

from kdistill.teachers.cache import (
    cached_logits_of_batch,
    split_fingerprint,
    teacher_features_for_split,
    teacher_logits_for_split,
    teacher_top_k_for_split,
)
from kdistill.teachers.teacher import (
    Teacher,
    evaluate_growing_ensembles,
    evaluate_teacher,
    load_teacher,
)

__all__ = [
    "Teacher",
    "cached_logits_of_batch",
    "evaluate_teacher",
    "evaluate_growing_ensembles",
    "load_teacher",
    "split_fingerprint",
    "teacher_features_for_split",
    "teacher_logits_for_split",
    "teacher_top_k_for_split",
]
