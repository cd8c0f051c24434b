"""A trained classifier as a measuring instrument: the feature space in which generated
images are compared with real ones (:class:`kdistill.tasks.generation.FeatureSpace`).

Like a teacher it is a frozen model read from a ``kdistill train`` file with the input
encoding that file records; unlike a teacher it teaches nothing."""

from __future__ import annotations

from pathlib import Path

from kdistill.data import InputEncoding
from kdistill.engine.checkpoint import load_model
from kdistill.errors import KDistillError
from kdistill.tasks.generation import FeatureSpace

__all__ = ["load_feature_space"]


def load_feature_space(
    path: str | Path, layer: str, kind: str, dataset: str | None = None
) -> FeatureSpace:
    """The classifier file ``path`` with the features at module ``layer`` (its ``kind``,
    ``input`` or ``output``). ``dataset`` given (a data set spec, as model files record it):
    a classifier trained on another data set is refused."""
    classifier, metadata = load_model(path)
    trained_on = metadata.get("dataset")
    if dataset is not None and trained_on is not None and trained_on != dataset:
        raise KDistillError(
            f"gan.classifier {path} was trained on {trained_on}, this run generates {dataset}: "
            f"train a classifier on {dataset} (kdistill train) and point gan.classifier to it"
        )
    described = metadata.get("input_encoding")
    encoding = (
        InputEncoding.from_description(described) if described else InputEncoding(divisor=255.0)
    )
    for parameter in classifier.parameters():
        parameter.requires_grad_(False)
    recipe = metadata.get("recipe") or {}
    return FeatureSpace(
        classifier.eval(),
        encoding,
        layer,
        kind,
        description=(
            f"kdistill {recipe.get('name', 'classifier')} {Path(path).name} "
            f"({layer}, {kind}); not Inception-FID"
        ),
    )
