"""Methods that train more than one model at once: distillation, born-again, mutual learning."""

from kdistill.procedures.distill import Distiller

__all__ = ["Distiller"]
