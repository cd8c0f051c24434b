"""Methods that train more than one model at once: distillation, born-again, mutual learning."""

from kdistill.methods.born_again import BornAgainResult, run_born_again
from kdistill.methods.distill import Distiller
from kdistill.methods.mutual import MutualObjective, MutualResult, run_mutual, train_alone

__all__ = [
    "BornAgainResult",
    "Distiller",
    "MutualObjective",
    "MutualResult",
    "run_born_again",
    "run_mutual",
    "train_alone",
]
