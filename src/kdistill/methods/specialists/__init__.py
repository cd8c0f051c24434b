"""Generalist + specialists (Hinton, Vinyals & Dean 2015, section 5).

``clustering`` (the class sets, from the covariance of the generalist's predictions),
``training`` (specialists from the generalist's weights, with a dustbin class, half/half
batches and the dustbin shift; each a resumable unit, several in parallel), ``inference``
(the paper's KL minimisation, vectorised), ``metrics`` (Tables 3 and 4) and ``distilled``
(the single model distilled from the ensemble, beyond the paper).
"""

from kdistill.methods.specialists.clustering import (
    class_groups,
    confusion_inside_groups,
    minibatch_kmeans,
    prediction_covariance,
)
from kdistill.methods.specialists.distilled import distill_combined
from kdistill.methods.specialists.inference import (
    active_specialists,
    combine,
    combined_log_probs,
    group_membership,
)
from kdistill.methods.specialists.metrics import (
    conditional_accuracy,
    gain_by_coverage,
    table_3_row,
)
from kdistill.methods.specialists.training import (
    SpecialistJob,
    SpecialistTask,
    dustbin_shift,
    load_specialist,
    specialist_labels,
    train_specialist,
    train_specialists,
)

__all__ = [
    "SpecialistJob",
    "SpecialistTask",
    "active_specialists",
    "class_groups",
    "combine",
    "combined_log_probs",
    "conditional_accuracy",
    "confusion_inside_groups",
    "distill_combined",
    "dustbin_shift",
    "gain_by_coverage",
    "group_membership",
    "load_specialist",
    "minibatch_kmeans",
    "prediction_covariance",
    "specialist_labels",
    "table_3_row",
    "train_specialist",
    "train_specialists",
]
