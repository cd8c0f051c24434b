"""Class-conditional image generation: batches of real images and class ids, a generator
``G(noise, labels) -> images``, and metrics in the feature space of a *kdistill-trained
classifier* of the same data set.

The metrics are not Inception-FID: an ImageNet Inception network knows nothing of 28x28
grey digits or clothes, and no model hub is reachable, so the features come from a
classifier trained with ``kdistill train`` on the data set itself (its file is
``gan.classifier``; the layer is ``gan.feature_layer``):

* Frechet distance (Heusel et al., NeurIPS 2017, eq. 6, in that feature space):
  ``||mu_r - mu_g||^2 + tr(C_r + C_g - 2 (C_r C_g)^{1/2})`` between the split's real images
  and as many generated images, with balanced classes;
* classification accuracy of generated samples: the classifier's prediction against the
  class the generator was asked for (``errors`` counts the misses, so the engine's one-line
  progress and ``kdistill train``'s summary read it like a classifier's errors);
* precision and recall (Kynkaanniemi et al., NeurIPS 2019, eq. 1-3): the share of generated
  samples inside the k-nearest-neighbour balls of the real ones, and the converse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kdistill.data import Batch, InputEncoding, Split
from kdistill.errors import KDistillError
from kdistill.losses.hooks import FeatureCapture
from kdistill.tasks.base import Evaluation, Meter, Task, register_task, run_on_example

__all__ = [
    "AdversarialOutputs",
    "FeatureSpace",
    "GenerationEvaluation",
    "GenerationTask",
    "frechet_distance",
    "generate",
    "generator_sizes",
    "precision_recall",
    "psd_matrix_sqrt",
]


def psd_matrix_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix, by
    eigendecomposition (negative eigenvalues from rounding are clipped to 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(
    mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor
) -> float:
    """Frechet distance between Gaussians ``N(mean_a, cov_a)`` and ``N(mean_b, cov_b)``
    (Heusel et al. 2017, eq. 6). ``tr((C_a C_b)^{1/2})`` is computed as
    ``tr((C_a^{1/2} C_b C_a^{1/2})^{1/2})``, the same eigenvalues with a symmetric matrix, in
    float64."""
    mean_a, cov_a, mean_b, cov_b = (t.double() for t in (mean_a, cov_a, mean_b, cov_b))
    root_a = psd_matrix_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    squared = (mean_a - mean_b).pow(2).sum()
    return float(squared + torch.trace(cov_a) + torch.trace(cov_b) - 2 * trace_root)


def _statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features = features.double()
    return features.mean(dim=0), torch.cov(features.T)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, eq. 1-3): a sample is on the
    other set's manifold when it lies within the distance of some sample of that set to its
    k-th nearest neighbour (itself excluded)."""
    if min(len(real), len(fake)) <= k:
        raise KDistillError(
            f"precision/recall with k={k} needs more than {k} samples per set, got "
            f"{len(real)} real and {len(fake)} generated: raise gan.eval_samples"
        )

    def radii(points: torch.Tensor) -> torch.Tensor:
        distances = torch.cdist(points, points)
        return distances.kthvalue(k + 1, dim=1).values  # k + 1: the point itself is at 0

    def inside(points: torch.Tensor, centres: torch.Tensor, radius: torch.Tensor) -> float:
        return float((torch.cdist(points, centres) <= radius[None, :]).any(dim=1).double().mean())

    real, fake = real.double(), fake.double()
    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


@dataclass
class FeatureSpace:
    """A trained classifier whose ``layer`` output (or ``kind="input"``: its input) gives the
    features; ``encoding`` is the input encoding its file recorded. ``description`` names it
    in every evaluation summary."""

    classifier: nn.Module
    encoding: InputEncoding
    layer: str = "classifier"
    kind: str = "input"
    description: str = "kdistill classifier"

    @torch.no_grad()
    def features_and_logits(
        self, images: torch.Tensor, batch_size: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[N, D]`` (flattened) and logits of scaled images ``[N, C, H, W]`` in [0, 1]."""
        self.classifier.to(device).eval()
        features, logits = [], []
        with FeatureCapture(self.classifier, [(self.layer, self.kind)]) as capture:
            for start in range(0, len(images), batch_size):
                chunk = self.encoding.finish(images[start : start + batch_size].to(device))
                logits.append(self.classifier(chunk).float().cpu())
                features.append(capture.get(self.layer, self.kind).flatten(1).float().cpu())
        return torch.cat(features), torch.cat(logits)


def generator_sizes(model: nn.Module, role: str = "generator") -> tuple[int, int]:
    """``(noise_size, num_classes)`` of a conditional generator, or a one-line error naming
    ``role`` when the model does not declare them."""
    noise_size = getattr(model, "noise_size", None)
    num_classes = getattr(model, "num_classes", None)
    if not isinstance(noise_size, int) or not isinstance(num_classes, int):
        raise KDistillError(
            f"{role} ({type(model).__name__}) is not a conditional generator: the "
            "generation task needs a model with int attributes noise_size and num_classes, "
            "called as model(noise, labels) (e.g. model.name: cgan-generator)"
        )
    return noise_size, num_classes


@torch.no_grad()
def generate(
    generator: nn.Module, count: int, seed: int, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images of ``generator`` in evaluation mode, classes ``0, 1, ..., 0, 1, ...``
    (balanced), noise drawn from ``seed``: the same noise and classes for every model and
    epoch. Returns ``(images on the CPU, labels)``."""
    noise_size, num_classes = generator_sizes(generator)
    noise = torch.randn(count, noise_size, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(count) % num_classes
    was_training = generator.training
    generator.eval()
    images = [
        generator(
            noise[start : start + batch_size].to(device),
            labels[start : start + batch_size].to(device),
        ).cpu()
        for start in range(0, count, batch_size)
    ]
    generator.train(was_training)
    return torch.cat(images), labels


@dataclass
class GenerationEvaluation(Evaluation):
    frechet_distance: float
    errors: int
    total: int
    precision: float
    recall: float
    feature_space: str

    @property
    def accuracy(self) -> float:
        return 1.0 - self.errors / self.total

    def summary(self, with_details: bool = False) -> dict[str, Any]:
        return {
            "frechet_distance": round(self.frechet_distance, 4),
            "accuracy": round(self.accuracy, 6),
            "errors": self.errors,
            "total": self.total,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "feature_space": self.feature_space,
        }


@dataclass
class AdversarialOutputs:
    """What a GAN objective hands the meter: the discriminator's scores (logits) of the real
    images and of the generated ones, detached."""

    real_scores: torch.Tensor
    fake_scores: torch.Tensor


class _AdversarialMeter(Meter):
    """How often the discriminator is right: real scored > 0, generated scored < 0."""

    def __init__(self, device: torch.device) -> None:
        self.real_right = torch.zeros((), dtype=torch.long, device=device)
        self.fake_right = torch.zeros((), dtype=torch.long, device=device)
        self.seen = 0

    def update(self, outputs: AdversarialOutputs, batch: Batch) -> None:
        self.real_right += (outputs.real_scores.detach() > 0).sum()
        self.fake_right += (outputs.fake_scores.detach() < 0).sum()
        self.seen += len(batch.labels)

    def summary(self) -> dict[str, float]:
        seen = max(self.seen, 1)
        return {
            "discriminator_real_accuracy": int(self.real_right) / seen,
            "discriminator_fake_accuracy": int(self.fake_right) / seen,
        }

    def reduce(self, total: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.real_right = total(self.real_right)
        self.fake_right = total(self.fake_right)
        self.seen = int(total(torch.tensor(self.seen)))


@register_task
class GenerationTask(Task):
    """Real images with their class ids; a model is a class-conditional generator with
    ``noise_size`` and ``num_classes`` attributes, called as ``G(noise, labels)``.

    The method that trains it sets :attr:`feature_space` (from ``gan.classifier``) and the
    evaluation options before :func:`~kdistill.engine.fit` runs."""

    name = "generation"

    def __init__(self) -> None:
        self.feature_space: FeatureSpace | None = None
        self.samples = 2000
        self.seed = 0
        self.nearest_k = 3
        self._real: dict[int, tuple[Split, torch.Tensor]] = {}

    def configure(
        self, feature_space: FeatureSpace, samples: int = 2000, seed: int = 0, nearest_k: int = 3
    ) -> GenerationTask:
        self.feature_space, self.samples, self.seed, self.nearest_k = (
            feature_space,
            samples,
            seed,
            nearest_k,
        )
        self._real = {}
        return self

    def meter(self, device: torch.device) -> Meter:
        return _AdversarialMeter(device)

    def _real_features(self, split: Split, batch_size: int, device: torch.device) -> torch.Tensor:
        # Computed once per split: the classifier and the real images never change in a run.
        cached = self._real.get(id(split))
        if cached is None or cached[0] is not split:
            assert self.feature_space is not None
            images = split.input_encoding.scale(split.inputs)
            features, _ = self.feature_space.features_and_logits(images, batch_size, device)
            cached = self._real[id(split)] = (split, features)
        return cached[1]

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> GenerationEvaluation:
        if self.feature_space is None:
            raise KDistillError(
                "the generation task has no classifier to measure samples with: set "
                "gan.classifier to a model file written by kdistill train on this data set"
            )
        real = self._real_features(split, batch_size, device)
        count = min(self.samples, len(split))
        images, labels = generate(model, count, self.seed, batch_size, device)
        fake, logits = self.feature_space.features_and_logits(images, batch_size, device)
        # A fixed subset of the real images, as many as generated, for precision/recall.
        chosen = torch.randperm(len(real), generator=torch.Generator().manual_seed(self.seed))
        precision, recall = precision_recall(real[chosen[:count]], fake, self.nearest_k)
        return GenerationEvaluation(
            frechet_distance=frechet_distance(*_statistics(real), *_statistics(fake)),
            errors=int((logits.argmax(dim=1) != labels).sum()),
            total=count,
            precision=precision,
            recall=recall,
            feature_space=self.feature_space.description,
        )

    def probe(self, model: nn.Module, split: Split, role: str) -> int:
        noise_size, num_classes = generator_sizes(model, role)
        expected = list(split.inputs.shape[1:])
        images = run_on_example(
            model,
            (torch.zeros(1, noise_size), torch.zeros(1, dtype=torch.long)),
            role,
            "a conditional generator is called as G(noise [B, noise_size], labels [B])",
            what="noise and class ids of shapes",
        )
        if not isinstance(images, torch.Tensor) or list(images.shape[1:]) != expected:
            shape = list(images.shape[1:]) if isinstance(images, torch.Tensor) else type(images)
            raise KDistillError(
                f"{role} ({type(model).__name__}) makes images of shape {shape}, the data set's "
                f"are {expected}: set model.kwargs (out_channels) to match the data"
            )
        return num_classes
