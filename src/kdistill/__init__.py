"""kdistill: knowledge distillation on one readable training engine.

``kdistill.distill(teacher, student, train_data, eval_data, temperature=4, epochs=10)`` and
``kdistill.train(model, train_data, eval_data)`` take your own models and tensors; the CLI
(``kdistill train | distill | evaluate | reproduce ...``) takes YAML configs. Rooms, bottom
up: ``data``, ``models``, ``losses``, ``tasks``, ``engine``, ``teachers``, ``methods``,
``studies``, ``reports``, then ``api`` and ``cli`` on top (see docs/architecture.md).
"""

from kdistill.errors import KDistillError

__version__ = "0.1.0"
__all__ = ["KDistillError", "Trained", "__version__", "as_split", "distill", "train"]


def __getattr__(name: str):  # the facade loads torch: only when it is asked for
    if name in {"distill", "train", "as_split", "Trained"}:
        from kdistill import api

        return getattr(api, name)
    raise AttributeError(f"module 'kdistill' has no attribute {name!r}")
