"""Causal-LM distillation end to end on the one engine: a small Llama student learns a tiny
Llama teacher's next-token distributions (forward KL, JSD, sparse top-k); held-out perplexity;
a student on another vocabulary is refused in one line."""

import pytest
import torch

from kdistill import methods
from kdistill.config import parse_config
from kdistill.data import DataSet, Split
from kdistill.engine import save_model
from kdistill.errors import KDistillError

pytest.importorskip("transformers")
from kdistill.models import create_model  # noqa: E402

TINY = {"vocab_size": 40, "max_positions": 32}


def _sequences(count: int, seed: int) -> Split:
    """Counting sequences a, a+s, a+2s ... (mod 38, ids 2..39), padded with 0 after 6..12 ids."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros(count, 12, dtype=torch.int64)
    for row in range(count):
        start, step = (int(v) for v in torch.randint(0, 38, (2,), generator=generator))
        length = int(torch.randint(6, 13, (1,), generator=generator))
        ids[row, :length] = torch.tensor(
            [(start + i * (step % 5 + 1)) % 38 + 2 for i in range(length)]
        )
    return Split(ids, torch.zeros(count, dtype=torch.int64))


def _config(tmp_path, name, teacher_file, terms, vocab=40):
    return parse_config(
        {
            "seed": 0,
            "task": "language-modeling",
            "output_dir": str(tmp_path / name),
            "model": {
                "name": "llama",
                "kwargs": {**TINY, "vocab_size": vocab, "layers": 1, "hidden": 32, "heads": 2},
            },
            "train": {
                "epochs": 3,
                "batch_size": 16,
                "eval_batch_size": 64,
                "optimizer": {"name": "adamw", "lr": 3e-3},
                "progress": False,
                "threads": 1,
            },
            "distill": {
                "teachers": [{"checkpoint": str(teacher_file)}],
                "soft_target_weight": 0.0,
                "use_labels": False,
                "terms": terms,
            },
        }
    )


@pytest.fixture()
def setting(tmp_path, monkeypatch):
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    recipe = {"name": "llama", "kwargs": {**TINY, "layers": 2, "hidden": 32, "heads": 2}}
    teacher = create_model(recipe["name"], **recipe["kwargs"])
    teacher_file = tmp_path / "teacher.safetensors"
    save_model(teacher_file, teacher, recipe, task="language-modeling")
    dataset = DataSet("counting", _sequences(160, 0), _sequences(48, 1), 1, "counting-160")
    return teacher_file, dataset


@pytest.mark.parametrize(
    "term",
    [
        {"kind": "lm_divergence", "divergence": "forward_kl"},
        {"kind": "lm_divergence", "divergence": "jsd", "beta": 0.5, "top_k": 8},
        {"kind": "lm_divergence", "divergence": "reverse_kl", "top_k": 8, "cached_top_k": True},
    ],
    ids=["forward-kl", "sparse-jsd", "cached-top-k-reverse-kl"],
)
def test_student_moves_towards_the_teacher(tmp_path, setting, term):
    teacher_file, dataset = setting
    result = methods.distill(_config(tmp_path, "student", teacher_file, [term]), dataset=dataset)
    losses = [record["train"]["loss"]["lm_divergence"] for record in result.history]
    assert losses[-1] < 0.8 * losses[0]
    test = result.final["student"]["test"]
    assert test["tokens"] > 0 and test["perplexity"] > 1


def test_student_with_another_vocabulary_is_refused_in_one_line(tmp_path, setting):
    teacher_file, dataset = setting
    config = _config(tmp_path, "wrong", teacher_file, [{"kind": "lm_cross_entropy"}], vocab=50)
    with pytest.raises(KDistillError) as error:
        methods.distill(config, dataset=dataset)
    assert "\n" not in str(error.value) and "vocab_size: 40" in str(error.value)
