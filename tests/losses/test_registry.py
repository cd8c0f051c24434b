"""Building terms by name, as configs do, and the errors a config author sees."""

from __future__ import annotations

import pytest

from kdistill.errors import KDistillError
from kdistill.losses.base import LossTerm
from kdistill.losses.features import HintLoss
from kdistill.losses.gradients import AttentionTransferLoss
from kdistill.losses.registry import TERM_REGISTRY, build_term, term_options

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
}


def test_every_kind_is_registered_under_its_name() -> None:
    assert set(TERM_REGISTRY) == set(OPTIONS)
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
    assert "ab, at, dkd, fitnet, grad_at, hard_targets" in message and "\n" not in message


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
