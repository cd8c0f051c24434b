"""kdistill: knowledge distillation on one readable training engine.

Rooms: ``data`` (real data sets in memory), ``models`` (registry), ``teachers`` (single or
ensemble, cached logits), ``losses`` (by what they match), ``engine`` (the one training loop,
checkpoints, evaluation), ``procedures`` (distiller and multi-model methods), ``experiments``
(declarative reproductions), ``reports``, ``cli``.
"""

from kdistill.errors import KDistillError

__version__ = "0.1.0"
__all__ = ["KDistillError", "__version__"]
