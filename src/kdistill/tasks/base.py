"""What a task is: how batches are built, what a model's output means, which metrics count.

The engine runs one loop for every task. It asks the task for a loader of batches, for a
meter that accumulates the training metric from the objective's outputs, and for an
evaluation of each model on each split; it never looks inside a batch or an output itself.
Classification is the first task; detection, segmentation, language models and generators
plug in the same way (``@register_task`` or ``task: package.module:Class`` in a config).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from kdistill.data import BatchLoader, Split
from kdistill.errors import KDistillError
from kdistill.plugins import import_object

__all__ = [
    "BatchSource",
    "Evaluation",
    "Meter",
    "Task",
    "create_task",
    "register_task",
    "run_on_example",
]


class BatchSource(Protocol):
    """An epoch's batches: ``set_epoch(e)`` fixes their order (and augmentation) from
    ``(seed, e)``, so a resumed run sees the same batches as an uninterrupted one."""

    def set_epoch(self, epoch: int) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


class Meter(ABC):
    """Accumulates a task's training metrics over an epoch, on the device (read once)."""

    @abstractmethod
    def update(self, outputs: Any, batch: Any) -> None: ...

    @abstractmethod
    def summary(self) -> dict[str, float]: ...

    def reduce(self, total: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace the counts by their sums over all processes (``total`` sums a tensor)."""
        raise KDistillError(
            f"{type(self).__name__} cannot be summed over processes: implement Meter.reduce "
            "to train this task under torchrun"
        )

    def state(self) -> dict[str, Any]:
        """What a mid-epoch checkpoint keeps to finish the epoch's figures after a resume:
        tensors and JSON-able values (by default every attribute)."""
        return dict(vars(self))

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (tensors go to the device of the values they replace)."""
        for key, value in state.items():
            current = getattr(self, key, None)
            if isinstance(value, torch.Tensor) and isinstance(current, torch.Tensor):
                value = value.to(current.device)
            setattr(self, key, value)


class Evaluation(ABC):
    """One model on one split; ``summary()`` is what metrics.jsonl and reports record."""

    @abstractmethod
    def summary(self, with_details: bool = False) -> dict[str, Any]: ...


class Task(ABC):
    """How one kind of work is batched, measured and checked. Subclasses set ``name``."""

    name: ClassVar[str] = "task"

    batch_loader: ClassVar[type[BatchLoader]] = BatchLoader
    """What :meth:`loader` builds; a task whose batches differ names its own class."""

    def loader(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        max_shift: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
    ) -> BatchSource:
        """Batches of ``split`` (:attr:`batch_loader`, after :meth:`check_split`); under
        torchrun, this process's share of every global batch."""
        self.check_split(split, max_shift)
        return self.batch_loader(
            split,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            max_shift=max_shift,
            device=device,
            rank=rank,
            world_size=world_size,
        )

    def check_split(self, split: Split, max_shift: int) -> None:
        """Refuse, with a one-line error naming the fix, data this task cannot batch; every
        split is fine by default."""
        return None

    def batch_size(self, batch: Any) -> int:
        """Examples in ``batch`` (a :class:`~kdistill.data.Batch` has one label row each)."""
        return len(batch.labels)

    @abstractmethod
    def meter(self, device: torch.device) -> Meter: ...

    @abstractmethod
    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> Evaluation: ...

    supervised_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    """Plain training's loss of ``(outputs, labels)`` when it is not cross-entropy (a
    detector's); ``kdistill train`` hands it to the supervised objective."""

    @abstractmethod
    def probe(self, model: nn.Module, split: Split, role: str) -> int:
        """Run ``model`` on one example; return its output size, or raise a one-line error
        naming the model (``role``), the input shape it got and the config key that changes it."""


_TASKS: dict[str, type[Task]] = {}


def register_task(task_class: type[Task]) -> type[Task]:
    """Decorator: make a :class:`Task` subclass available by its ``name``."""
    _TASKS[task_class.name] = task_class
    return task_class


def create_task(name: str) -> Task:
    """A task by registered name (``classification``) or ``package.module:Class``."""
    task_class: Callable[[], Task] | None = _TASKS.get(name)
    if task_class is None:
        if ":" not in name:
            raise KDistillError(
                f"unknown task {name!r}: use one of {', '.join(sorted(_TASKS))} or "
                "'package.module:Class'"
            )
        task_class = import_object(name, "task")
        if not (isinstance(task_class, type) and issubclass(task_class, Task)):
            raise KDistillError(f"task {name!r} must subclass kdistill.tasks.Task")
    return task_class()


def run_on_example(
    model: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    role: str,
    fix: str,
    *,
    what: str = "inputs of shape",
    errors: tuple[type[Exception], ...] = (RuntimeError, ValueError),
) -> Any:
    """``model``'s output for one ``example`` (no grad, eval mode, its mode restored after), for
    a task's :meth:`Task.probe`; a tuple is passed as several arguments (a generator's noise
    and class). A model that raises one of ``errors`` gets the one-line error naming it
    (``role``), the input it got and ``fix``."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    arguments = example if isinstance(example, tuple) else (example,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(*(argument.to(device) for argument in arguments))
    except errors as error:
        text = str(error).strip()
        first_line = text.splitlines()[0] if text else ""
        shapes = " and ".join(str(list(argument.shape)) for argument in arguments)
        raise KDistillError(
            f"{role} ({type(model).__name__}) rejects {what} {shapes} ({first_line}): {fix}"
        ) from None
    finally:
        model.train(was_training)
