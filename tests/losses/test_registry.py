"""Building terms by name or import path, as configs do, and the errors a config author sees."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm, TermContext
from kdistill.losses.causal_lm import NextTokenCrossEntropy, TokenDivergence
from kdistill.losses.dense import PairwiseAffinityDistillation, PixelwiseDistillation
from kdistill.losses.detection import BoundedRegression, DetectionLoss, DetectionSoftTargets
from kdistill.losses.features import HintLoss, NeuronSelectivityLoss
from kdistill.losses.generators import GeneratorFeatureLoss, ReconstructionLoss
from kdistill.losses.gradients import AttentionTransferLoss, InputGradientLoss
from kdistill.losses.language import (
    EmbeddingCosineLoss,
    EmbeddingMSELoss,
    HiddenCosineLoss,
    HiddenMSELoss,
    MiniLMAttentionLoss,
)
from kdistill.losses.logits import (
    DecoupledKDLoss,
    HardTargetLoss,
    LogitMatchingLoss,
    SoftTargetLoss,
)
from kdistill.losses.registry import TERM_REGISTRY, build_term, register_term, term_options
from kdistill.losses.relations import (
    RelationalAngleLoss,
    RelationalDistanceLoss,
    SimilarityPreservingLoss,
)
from kdistill.losses.sparsity import ActivationBoundaryLoss
from kdistill.losses.weights import WeightMatchingLoss

# The hand-written tuple registry.py kept before terms registered themselves, with the names
# those classes had then, and every term registered since.
BUILTIN_TERMS = {
    "soft_targets": SoftTargetLoss,
    "hard_targets": HardTargetLoss,
    "logit_l2": LogitMatchingLoss,
    "dkd": DecoupledKDLoss,
    "weights": WeightMatchingLoss,
    "fitnet": HintLoss,
    "nst": NeuronSelectivityLoss,
    "at": AttentionTransferLoss,
    "grad_at": InputGradientLoss,
    "ab": ActivationBoundaryLoss,
    "rkd_distance": RelationalDistanceLoss,
    "rkd_angle": RelationalAngleLoss,
    "sp": SimilarityPreservingLoss,
    "reconstruction": ReconstructionLoss,
    "generator_features": GeneratorFeatureLoss,
    "hidden_mse": HiddenMSELoss,
    "hidden_cosine": HiddenCosineLoss,
    "minilm_attention": MiniLMAttentionLoss,
    "embedding_cosine": EmbeddingCosineLoss,
    "embedding_mse": EmbeddingMSELoss,
    "lm_cross_entropy": NextTokenCrossEntropy,
    "lm_divergence": TokenDivergence,
    # Dense tasks (segmentation, detection), registered after the tuple was retired.
    "pixel_kl": PixelwiseDistillation,
    "pairwise": PairwiseAffinityDistillation,
    "detection_targets": DetectionLoss,
    "detection_soft_targets": DetectionSoftTargets,
    "bounded_regression": BoundedRegression,
}

OPTIONS = {
    "soft_targets": {"temperature": 4.0},
    "hard_targets": {},
    "logit_l2": {},
    "dkd": {"alpha": 1.0, "beta": 8.0},
    "weights": {"pairs": [["layers.0", "layers.0"]]},
    "fitnet": {"student": "layers.2", "teacher": "layers.4"},
    "nst": {"student": "a", "teacher": "b", "kernel": "gaussian"},
    "at": {"pairs": [["a", "b"], ["c", "d"]], "p": 2},
    "grad_at": {},
    "ab": {"student": "a", "teacher": "b", "margin": 0.5},
    "rkd_distance": {},
    "rkd_angle": {"student": "pen", "teacher": "pen"},
    "sp": {"student": "a", "teacher": "b"},
    "reconstruction": {},
    "generator_features": {"student": "blocks.0", "teacher": "blocks.0"},
    "hidden_mse": {"student_layers": 2, "teacher_layers": 6},
    "hidden_cosine": {"pairs": [["a", "b"]]},
    "minilm_attention": {"relation_heads": 4},
    "embedding_cosine": {},
    "embedding_mse": {},
    "lm_cross_entropy": {},
    "lm_divergence": {"divergence": "jsd", "beta": 0.3, "top_k": 8},
    "pixel_kl": {"temperature": 2.0},
    "pairwise": {"student": "a", "teacher": "b", "node_size": 2},
    "detection_targets": {"stride": 4},
    "detection_soft_targets": {"background_weight": 1.5},
    "bounded_regression": {"margin": 0.1},
}


def test_every_kind_is_registered_under_its_name() -> None:
    assert set(TERM_REGISTRY) == set(OPTIONS) == set(BUILTIN_TERMS)
    for kind, term_class in TERM_REGISTRY.items():
        assert term_class.name == kind


@pytest.mark.parametrize("kind", sorted(OPTIONS))
def test_build_each_term_by_name(kind: str) -> None:
    term = build_term(kind, 2.5, **OPTIONS[kind])
    assert isinstance(term, LossTerm) and isinstance(term, TERM_REGISTRY[kind])
    assert term.name == kind and term.weight == 2.5


def test_config_style_options_reach_the_constructor() -> None:
    hint = build_term("fitnet", 100, student="layers.2", teacher="layers.4")
    assert isinstance(hint, HintLoss)
    assert (hint.student_path, hint.teacher_path, hint.weight) == ("layers.2", "layers.4", 100.0)
    at = build_term("at", 1000, pairs=[["s1", "t1"], ["s2", "t2"]])
    assert isinstance(at, AttentionTransferLoss)
    assert at.pairs == [("s1", "t1"), ("s2", "t2")]


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(KDistillError) as error:
        build_term("fitnets", 1.0)
    message = str(error.value)
    assert message.startswith("unknown loss term kind 'fitnets'")
    assert (
        "ab, at, bounded_regression, detection_soft_targets, detection_targets, dkd, "
        "embedding_cosine, embedding_mse, fitnet, generator_features" in message
    )
    assert "\n" not in message


def test_unknown_option_lists_accepted_options() -> None:
    with pytest.raises(
        KDistillError,
        match=r"unknown option\(s\) student_path for loss term 'fitnet': accepted options are "
        r"student, teacher, reduction$",
    ):
        build_term("fitnet", 1.0, student_path="a", teacher="b")
    with pytest.raises(KDistillError, match="accepted options are none besides weight"):
        build_term("grad_at", 1.0, beta=1000)


def test_missing_and_bad_options() -> None:
    with pytest.raises(KDistillError, match=r"'sp' needs option\(s\) teacher"):
        build_term("sp", 1.0, student="a")
    with pytest.raises(KDistillError, match="weight must be a number"):
        build_term("sp", "heavy", student="a", teacher="b")
    with pytest.raises(KDistillError, match="kernel must be one of"):
        build_term("nst", 1.0, student="a", teacher="b", kernel="cosine")


def test_term_options_come_from_the_signature() -> None:
    assert term_options(TERM_REGISTRY["nst"]) == (
        ["student", "teacher", "kernel", "sigma_squared"],
        ["student", "teacher"],
    )


def test_builtin_terms_are_the_old_tuple_under_the_old_names() -> None:
    assert TERM_REGISTRY == BUILTIN_TERMS
    assert set(BUILTIN_TERMS) == set(OPTIONS)


def test_term_modules_import_first_without_a_cycle() -> None:
    """A term module imported before the registry (as user code may) must not meet a cycle."""
    code = (
        "import kdistill.losses.logits\n"
        "from kdistill.losses.registry import TERM_REGISTRY, build_term\n"
        "assert len(TERM_REGISTRY) == 27, sorted(TERM_REGISTRY)\n"
        "build_term('soft_targets', 1.0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


# --- user terms -------------------------------------------------------------------------------


@pytest.fixture
def restore_registry() -> Iterator[None]:
    """Whatever a test registers is gone afterwards (other tests compare the full registry)."""
    saved = dict(TERM_REGISTRY)
    yield
    TERM_REGISTRY.clear()
    TERM_REGISTRY.update(saved)


USER_MODULE = """
import torch

from kdistill.losses.base import LossTerm, TermContext
from kdistill.losses.dense import PairwiseAffinityDistillation, PixelwiseDistillation
from kdistill.losses.detection import BoundedRegression, DetectionLoss, DetectionSoftTargets
from kdistill.losses.registry import register_term


@register_term
class ScaledLogitGap(LossTerm):
    \"\"\"``scale`` times the mean absolute student-teacher logit gap, to the power ``power``.\"\"\"

    name = "user_scaled_logit_gap"

    def __init__(self, weight: float = 1.0, scale: float = 1.0, power: float = 1.0) -> None:
        super().__init__(weight)
        self.scale = float(scale)
        self.power = float(power)

    def forward(self, context: TermContext) -> torch.Tensor:
        gap = (context.student_logits - context.teacher_logits).abs().mean()
        return self.scale * gap.pow(self.power)


class NotATerm:
    name = "not_a_term"


def build_something():
    return None
"""


@pytest.fixture
def user_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_registry: None
) -> Iterator[str]:
    """The name of a fresh module on sys.path holding a user's own terms."""
    name = f"user_terms_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_decorator_registers_a_user_term_by_its_name(
    make_context: Callable[..., TermContext], restore_registry: None
) -> None:
    @register_term
    class CountsWrong(LossTerm):
        name = "user_counts_wrong"

        def forward(self, context: TermContext) -> torch.Tensor:
            wrong = context.student_logits.argmax(dim=-1) != context.labels
            return wrong.to(context.student_logits.dtype).mean()

    assert TERM_REGISTRY["user_counts_wrong"] is CountsWrong
    assert register_term(CountsWrong) is CountsWrong  # the same class again is fine
    term = build_term("user_counts_wrong", 3.0)
    assert isinstance(term, CountsWrong) and term.weight == 3.0
    context = make_context(
        student_logits=torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]], dtype=torch.float64),
        labels=torch.tensor([0, 0, 1]),
    )
    assert term(context).item() == pytest.approx(2 / 3)


def test_a_taken_name_names_both_classes(restore_registry: None) -> None:
    class SecondSoftTargets(LossTerm):
        name = "soft_targets"

    with pytest.raises(KDistillError) as error:
        register_term(SecondSoftTargets)
    message = str(error.value)
    assert "'soft_targets'" in message and "\n" not in message
    assert "kdistill.losses.logits.SoftTargetLoss" in message
    assert "SecondSoftTargets" in message
    assert TERM_REGISTRY["soft_targets"] is SoftTargetLoss


def test_decorator_refuses_what_cannot_be_a_term(restore_registry: None) -> None:
    class Unnamed(LossTerm):
        pass

    with pytest.raises(KDistillError, match="must set a class attribute name"):
        register_term(Unnamed)

    class Pathlike(LossTerm):
        name = "pkg.mod:Thing"

    with pytest.raises(KDistillError, match="without ':'"):
        register_term(Pathlike)
    with pytest.raises(KDistillError, match=r"must subclass kdistill\.losses\.base\.LossTerm"):
        register_term(dict)  # type: ignore[type-var]
    assert TERM_REGISTRY == BUILTIN_TERMS


def test_build_a_user_term_by_import_path(
    user_module: str, make_context: Callable[..., TermContext]
) -> None:
    term = build_term(f"{user_module}:ScaledLogitGap", 0.5, scale=3.0, power=2)
    assert type(term).__name__ == "ScaledLogitGap" and type(term).__module__ == user_module
    assert term.weight == 0.5 and term.name == "user_scaled_logit_gap"
    student = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 1.0]], dtype=torch.float64)
    teacher = torch.tensor([[0.0, 2.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    value = term(make_context(student_logits=student, teacher_logits=teacher))
    # gaps 1, 0, 1, 0, 2, 0: mean 2/3; 3 * (2/3)^2 = 4/3
    assert value.item() == pytest.approx(4 / 3)
    # importing the module ran its @register_term: the short name now works too
    assert isinstance(build_term("user_scaled_logit_gap", 1.0), type(term))


def test_option_checks_apply_to_imported_terms(user_module: str) -> None:
    kind = f"{user_module}:ScaledLogitGap"
    with pytest.raises(
        KDistillError,
        match=rf"unknown option\(s\) alpha for loss term '{kind}': accepted options are "
        r"scale, power$",
    ):
        build_term(kind, 1.0, alpha=2.0)
    with pytest.raises(KDistillError, match="weight must be a number"):
        build_term(kind, "heavy")


def test_missing_option_of_an_imported_term(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "user_needy_term.py").write_text(
        "from kdistill.losses.base import LossTerm\n\n\n"
        "class Needy(LossTerm):\n"
        "    name = 'needy'\n\n"
        "    def __init__(self, weight=1.0, *, level):\n"
        "        super().__init__(weight)\n"
        "        self.level = level\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(KDistillError, match=r"'user_needy_term:Needy' needs option\(s\) level"):
            build_term("user_needy_term:Needy", 1.0)
        assert build_term("user_needy_term:Needy", 1.0, level=3).level == 3
        assert "needy" not in TERM_REGISTRY  # an import path needs no registration
    finally:
        sys.modules.pop("user_needy_term", None)


def _one_line_error(kind: str) -> str:
    with pytest.raises(KDistillError) as error:
        build_term(kind, 1.0)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_module_that_cannot_be_imported() -> None:
    message = _one_line_error("no_such_kdistill_pkg.terms:MyTerm")
    assert "cannot import module 'no_such_kdistill_pkg.terms'" in message
    assert "PYTHONPATH" in message and "spelling" in message


def test_module_whose_own_import_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "user_broken_terms.py").write_text("import no_such_dependency_kdistill\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = _one_line_error("user_broken_terms:MyTerm")
    assert "cannot import module 'user_broken_terms'" in message
    assert "ModuleNotFoundError" in message and "no_such_dependency_kdistill" in message
    assert "user_broken_terms" not in sys.modules  # a failed import leaves nothing behind


def test_attribute_missing(user_module: str) -> None:
    message = _one_line_error(f"{user_module}:ScaledLogitGapp")
    assert f"module '{user_module}' has no attribute 'ScaledLogitGapp'" in message


@pytest.mark.parametrize("attribute", ["NotATerm", "build_something", "torch"])
def test_attribute_is_not_a_loss_term(user_module: str, attribute: str) -> None:
    message = _one_line_error(f"{user_module}:{attribute}")
    assert f"'{user_module}:{attribute}'" in message
    assert message.endswith("must subclass kdistill.losses.base.LossTerm")


@pytest.mark.parametrize("kind", [":SoftTargetLoss", "kdistill.losses.logits:"])
def test_half_an_import_path(kind: str) -> None:
    message = _one_line_error(kind)
    assert "'package.module:ClassName'" in message


def test_a_builtin_by_its_import_path() -> None:
    term = build_term("kdistill.losses.logits:SoftTargetLoss", 2.0, temperature=4.0)
    assert isinstance(term, SoftTargetLoss) and term.temperature == 4.0
