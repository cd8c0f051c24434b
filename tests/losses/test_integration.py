"""Every registered loss term, end to end on real MNIST images: from a config through
``methods.distill`` and from Python through ``Distiller`` + ``fit``.

A tiny CNN teacher (untrained: the plumbing, not the accuracy, is under test) is saved with
``save_model``; students are 1-epoch runs on a 300-image subset.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import torch

from kdistill import methods
from kdistill.config import RunConfig, TeacherConfig, TrainConfig, parse_config
from kdistill.data import DataSet, TrainingData
from kdistill.engine import FitSettings, fit, save_model
from kdistill.engine.checkpoint import load_tensors
from kdistill.errors import KDistillError
from kdistill.losses.logits import HardTargetLoss
from kdistill.losses.registry import TERM_REGISTRY, build_term
from kdistill.methods.distill import Distiller
from kdistill.models import create_model
from kdistill.teachers import load_teacher

STUDENT = {"name": "cnn", "kwargs": {"channels": [4, 8]}}
TEACHER = {"name": "cnn", "kwargs": {"channels": [6, 12]}}

# Options per kind, with SmallCNN module paths (features.0 conv, .1 BN, .2 ReLU, .3 pool,
# .4-.7 the second block, pool, classifier.1).
TERM_OPTIONS: dict[str, dict[str, Any]] = {
    "soft_targets": {"temperature": 4.0},
    "hard_targets": {},
    "logit_l2": {},
    "dkd": {"temperature": 4.0, "alpha": 1.0, "beta": 8.0},
    "weights": {"pairs": [["features.0", "features.0"], ["classifier.1", "classifier.1"]]},
    "fitnet": {"student": "features.5", "teacher": "features.5", "reduction": "mean"},
    "nst": {"student": "features.6", "teacher": "features.6"},
    "at": {"pairs": [["features.2", "features.2"], ["features.6", "features.6"]]},
    "grad_at": {},
    "ab": {"student": "features.5", "teacher": "features.5"},
    "rkd_distance": {"student": "pool", "teacher": "pool"},
    "rkd_angle": {},
    "sp": {"student": "features.7", "teacher": "features.7"},
}
WITH_ADAPTERS = ("fitnet", "ab", "weights")


@pytest.fixture(scope="module", autouse=True)
def _optimizer_imports() -> None:
    """torch imports torch._dynamo when the first optimizer is built (seconds, once per
    process); pay it here so the first test's own time is its own."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


@pytest.fixture(scope="module")
def tiny(mnist) -> DataSet:
    return DataSet(
        name="mnist-tiny",
        train=mnist.train.subset(torch.arange(300)),
        test=mnist.test.subset(torch.arange(200)),
        num_classes=10,
        fingerprint="mnist-tiny",
    )


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("teacher") / "model.safetensors"
    torch.manual_seed(123)  # not the students' seed: the weight maps would start at zero error
    save_model(path, create_model(TEACHER["name"], **TEACHER["kwargs"]), TEACHER)
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))


def _config(tmp_path: Path, teacher_file: Path, **distill: Any) -> RunConfig:
    return parse_config(
        {
            "output_dir": str(tmp_path / "run"),
            "model": STUDENT,
            "train": {"epochs": 1, "batch_size": 100, "progress": False, "threads": 1},
            "distill": {"teachers": [{"checkpoint": str(teacher_file)}], **distill},
        }
    )


def _student_keys() -> set[str]:
    return set(create_model(STUDENT["name"], **STUDENT["kwargs"]).state_dict())


TOKEN_TERMS = {
    "hidden_mse",
    "hidden_cosine",
    "minilm_attention",
    "embedding_cosine",
    "embedding_mse",
    "lm_cross_entropy",
    "lm_divergence",
}
"""Terms on token ids, which images cannot drive: end to end in
tests/methods/test_language_distill.py and test_causal_lm_distill.py, by hand in
tests/losses/test_language.py and test_causal_lm.py."""


GENERATOR_TERMS = {"reconstruction", "generator_features"}
"""Terms on a generator's images for (noise, class) batches: end to end in
tests/methods/test_gan.py, by hand in tests/losses/test_generators.py."""


DENSE_TERMS = {
    "pixel_kl",
    "pairwise",
    "detection_targets",
    "detection_soft_targets",
    "bounded_regression",
}
"""Terms on dense outputs (segmentation maps, detection grids): end to end in
tests/tasks/test_segmentation.py and test_detection.py, by hand in tests/losses/test_dense.py
and test_detection.py."""


def test_every_registered_kind_is_covered() -> None:
    covered = set(TERM_OPTIONS) | TOKEN_TERMS | GENERATOR_TERMS | DENSE_TERMS
    assert covered == set(TERM_REGISTRY)


@pytest.mark.parametrize("kind", sorted(TERM_OPTIONS))
def test_term_from_config_through_runs_distill(kind, tmp_path, tiny, teacher_file) -> None:
    config = _config(
        tmp_path,
        teacher_file,
        temperature=4.0,
        terms=[{"kind": kind, "weight": 0.5, **TERM_OPTIONS[kind]}],
    )
    result = methods.distill(config, dataset=tiny)
    losses = result.history[0]["train"]["loss"]
    names = [name for name in losses if name == kind or name.startswith(f"{kind}.")]
    assert names, losses
    assert all(torch.isfinite(torch.tensor(value)) for value in losses.values())
    saved, metadata = load_tensors(result.run_dir / "student.safetensors")
    assert set(saved) == _student_keys()
    live = build_term(kind, 1.0, **TERM_OPTIONS[kind]).needs_live_teacher
    assert metadata["teacher_cache"] is not live  # logit-only terms read cached teacher logits


@pytest.mark.parametrize("kind", sorted(TERM_OPTIONS))
def test_term_from_python_with_distiller_and_fit(kind, tmp_path, tiny, teacher_file) -> None:
    teacher = load_teacher([TeacherConfig(checkpoint=str(teacher_file))])
    torch.manual_seed(0)
    student = create_model(STUDENT["name"], **STUDENT["kwargs"])
    term = build_term(kind, 0.5, **TERM_OPTIONS[kind])
    objective = Distiller(student, teacher, [HardTargetLoss(1.0), term])
    before = {name: value.clone() for name, value in student.state_dict().items()}
    result = fit(
        objective,
        TrainingData(tiny.train, {"test": tiny.test}),
        FitSettings(
            TrainConfig(epochs=1, batch_size=100, progress=False, threads=1), tmp_path / "run"
        ),
    )
    assert kind in result.history[0]["train"]["loss"] or kind == "hard_targets"
    changed = [
        name for name, value in student.state_dict().items() if not value.equal(before[name])
    ]
    assert "features.0.weight" in changed
    assert set(load_tensors(tmp_path / "run" / "student.safetensors")[0]) == _student_keys()


@pytest.mark.parametrize("kind", WITH_ADAPTERS)
def test_adapters_are_trained_and_not_exported(kind, tmp_path, tiny, teacher_file) -> None:
    teacher = load_teacher([TeacherConfig(checkpoint=str(teacher_file))])
    torch.manual_seed(0)
    student = create_model(STUDENT["name"], **STUDENT["kwargs"])
    term = build_term(kind, 1.0, **TERM_OPTIONS[kind])
    objective = Distiller(student, teacher, [term])
    from kdistill.data import BatchLoader

    objective.prepare(next(iter(BatchLoader(tiny.train, 100, shuffle=False))))
    adapters = {name: value.detach().clone() for name, value in term.named_parameters()}
    assert adapters and objective.adapter_parameter_count() == sum(
        value.numel() for value in adapters.values()
    )
    fit(
        objective,
        TrainingData(tiny.train.subset(torch.arange(100)), {}),
        FitSettings(
            TrainConfig(epochs=1, batch_size=100, progress=False, threads=1), tmp_path / "run"
        ),
    )
    for name, value in term.named_parameters():
        assert not value.detach().equal(adapters[name]), f"{kind} adapter {name} did not train"
    student_file = load_tensors(tmp_path / "run" / "student.safetensors")[0]
    assert set(student_file) == _student_keys()
    checkpoint = load_tensors(tmp_path / "run" / "checkpoint.safetensors")[0]
    assert any(key.startswith("objective.terms.0.") for key in checkpoint)  # resumable


def test_unknown_module_path_in_config_lists_the_paths(tmp_path, tiny, teacher_file) -> None:
    config = _config(
        tmp_path,
        teacher_file,
        terms=[{"kind": "fitnet", "student": "features.42", "teacher": "features.5"}],
    )
    with pytest.raises(KDistillError) as error:
        methods.distill(config, dataset=tiny)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("no module 'features.42' in SmallCNN; module paths are: ")
    assert "features.0, features.1" in message and "classifier.1" in message


@pytest.mark.parametrize("keep_hints", [False, True])
def test_fitnet_two_stage_runs_hints_then_kd(
    tmp_path, tiny, teacher_file, monkeypatch, keep_hints
) -> None:
    calls: list[dict[str, Any]] = []
    real_fit = importlib.import_module("kdistill.methods.distill").fit

    def recording_fit(objective, *args, **kwargs):
        student = objective.student
        start = {name: value.clone() for name, value in student.state_dict().items()}
        result = real_fit(objective, *args, **kwargs)
        calls.append(
            {
                "terms": [term.name for term in objective.terms],
                "start": start,
                "end": {name: value.clone() for name, value in student.state_dict().items()},
                "epochs": args[1].train.epochs,
            }
        )
        return result

    monkeypatch.setattr(importlib.import_module("kdistill.methods.distill"), "fit", recording_fit)
    config = _config(
        tmp_path,
        teacher_file,
        hint_epochs=1,
        keep_hints=keep_hints,
        terms=[{"kind": "fitnet", "weight": 1.0, **TERM_OPTIONS["fitnet"]}],
    )
    result = methods.distill(config, dataset=tiny)
    hint, full = calls
    assert hint["terms"] == ["fitnet"] and hint["epochs"] == 1
    stage_two = ["soft_targets", "hard_targets"] + (["fitnet"] if keep_hints else [])
    assert full["terms"] == stage_two
    # stage 1 trains the layers up to the guided one (features.5), nothing above it
    assert not hint["end"]["features.0.weight"].equal(hint["start"]["features.0.weight"])
    assert hint["end"]["classifier.1.weight"].equal(hint["start"]["classifier.1.weight"])
    # stage 2 starts from the stage-1 student
    for name, value in hint["end"].items():
        assert full["start"][name].equal(value), name
    assert (result.run_dir / "hint-stage" / "student.safetensors").exists()
    assert set(result.history[0]["train"]["loss"]) == set(stage_two)


def test_hint_epochs_without_a_fitnet_term_is_a_config_error(tmp_path, tiny, teacher_file):
    config = _config(tmp_path, teacher_file, hint_epochs=2)
    with pytest.raises(KDistillError, match="hint_epochs=2 needs a fitnet term in distill.terms"):
        methods.distill(config, dataset=tiny)
