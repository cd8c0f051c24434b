"""Distillation methods and their setup from a config: plain training (the baseline and
teachers), distillation from fixed teachers (Hinton et al. 2015 plus the loss-term zoo),
born-again generations, deep mutual learning and network augmentation (tiny models). Each builds its models and objective and
calls the one engine loop."""

from kdistill.config import DistillRunConfig, NetAugRunConfig, RunConfig, TrainRunConfig
from kdistill.data import DataSet
from kdistill.engine import FitResult
from kdistill.errors import KDistillError
from kdistill.methods.born_again import BornAgainResult, run_born_again
from kdistill.methods.distill import Distiller, distill
from kdistill.methods.gan import GanDistiller, GanObjective, run_gan
from kdistill.methods.mutual import MutualObjective, MutualResult, run_mutual, train_alone
from kdistill.methods.netaug import NetAugObjective, run_netaug
from kdistill.methods.supervised import train
from kdistill.methods.terms import build_terms

__all__ = [
    "BornAgainResult",
    "Distiller",
    "GanDistiller",
    "GanObjective",
    "MutualObjective",
    "MutualResult",
    "NetAugObjective",
    "build_terms",
    "distill",
    "run",
    "run_born_again",
    "run_gan",
    "run_mutual",
    "run_netaug",
    "train",
    "train_alone",
]


def run(
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    dataset: DataSet | None = None,
) -> FitResult:
    """Train, distil or train with network augmentation, as the config's type says (the
    engine call of a single-model stage); ``task: generation`` trains a GAN (``run_gan``)."""
    if isinstance(config, TrainRunConfig | DistillRunConfig) and config.task == "generation":
        return run_gan(config, resume=resume, overwrite=overwrite, dataset=dataset)
    if isinstance(config, NetAugRunConfig):
        return run_netaug(config, resume=resume, dataset=dataset)
    if isinstance(config, DistillRunConfig):
        return distill(config, resume=resume, overwrite=overwrite, dataset=dataset)
    if isinstance(config, TrainRunConfig):
        return train(config, resume=resume, overwrite=overwrite, dataset=dataset)
    raise KDistillError(
        f"methods.run takes a train or distill config, got {type(config).__name__}: use "
        "run_born_again or run_mutual"
    )
