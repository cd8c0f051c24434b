"""End to end on token ids: a tiny BERT teacher trained with `train`, a smaller student distilled
with soft targets, TinyBERT and MiniLM terms from cached teacher features, on the one engine;
every config under configs/language parses."""

from pathlib import Path

import pytest
import torch
import yaml

from kdistill import methods
from kdistill.config import parse_config
from kdistill.data import DataSet, Split
from kdistill.engine.checkpoint import load_model
from kdistill.tasks import create_task

pytest.importorskip("transformers")

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "language"


def _topic_texts(count: int, seed: int) -> Split:
    """Texts of 4..12 ids whose topic c in {0, 1, 2} shows as id 10 + c among noise ids."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros(count, 12, dtype=torch.int64)
    labels = torch.randint(0, 3, (count,), generator=generator)
    for row in range(count):
        length = int(torch.randint(4, 13, (1,), generator=generator))
        ids[row, :length] = torch.randint(20, 50, (length,), generator=generator)
        ids[row, int(torch.randint(0, length, (1,), generator=generator))] = 10 + labels[row]
    return Split(ids, labels)


def _run(tmp_path, name, model, extra):
    text_model = {"vocab_size": 50, "max_positions": 16, "num_classes": 3, **model}
    return {
        "seed": 0,
        "task": "text-classification",
        "output_dir": str(tmp_path / name),
        "model": {"name": "bert", "kwargs": text_model},
        "train": {
            "epochs": 4,
            "batch_size": 16,
            "eval_batch_size": 64,
            "optimizer": {"name": "adamw", "lr": 3e-3},
            "progress": False,
            "threads": 1,
        },
        **extra,
    }


def test_distilled_student_learns_from_cached_teacher_features(tmp_path, monkeypatch):
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))
    dataset = DataSet("topics", _topic_texts(320, 0), _topic_texts(120, 1), 3, "topics-320")
    teacher = methods.train(
        parse_config(_run(tmp_path, "teacher", {"layers": 2, "hidden": 32, "heads": 4}, {})),
        dataset=dataset,
    )
    assert teacher.final["model"]["test"]["accuracy"] > 0.9
    distill = {
        "distill": {
            "teachers": [{"checkpoint": str(tmp_path / "teacher" / "model.safetensors")}],
            "temperature": 2.0,
            "hard_target_weight": 1.0,
            "cache_teacher_features": True,
            "terms": [
                {"kind": "hidden_mse", "student_layers": 1, "teacher_layers": 2},
                {
                    "kind": "minilm_attention",
                    "student": "encoder.encoder.layer.0",
                    "teacher": "encoder.encoder.layer.1",
                    "relation_heads": 2,
                },
            ],
        }
    }
    student = methods.distill(
        parse_config(_run(tmp_path, "student", {"layers": 1, "hidden": 16, "heads": 2}, distill)),
        dataset=dataset,
    )
    losses = student.history[-1]["train"]["loss"]
    assert set(losses) == {"soft_targets", "hard_targets", "hidden_mse", "minilm_attention"}
    assert (
        student.history[-1]["train"]["loss"]["minilm_attention"]
        < (student.history[0]["train"]["loss"]["minilm_attention"])
    )
    final = student.final["student"]["test"]
    assert final["accuracy"] > 0.8 and "macro_f1" in final
    # The saved student rebuilds from its file and scores the same.
    model, _ = load_model(tmp_path / "student" / "student.safetensors")
    again = create_task("text-classification").evaluate(
        model, dataset.test, 64, torch.device("cpu")
    )
    assert again.summary()["errors"] == final["errors"]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_language_configs_parse(path):
    config = parse_config(yaml.safe_load(path.read_text()), str(path))
    assert config.task in ("text-classification", "sentence-embedding", "language-modeling")


def test_embedding_student_reproduces_the_teachers_sentence_vectors(tmp_path, monkeypatch):
    from kdistill.engine import save_model
    from kdistill.models import create_model

    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))
    dataset = DataSet("topics", _topic_texts(160, 0), _topic_texts(60, 1), 3, "topics-160")
    recipe = {
        "name": "bert",
        "kwargs": {
            "vocab_size": 50,
            "max_positions": 16,
            "layers": 1,
            "hidden": 32,
            "heads": 4,
            "output": "embedding",
        },
    }
    torch.manual_seed(0)
    save_model(
        tmp_path / "teacher.safetensors", create_model(recipe["name"], **recipe["kwargs"]), recipe
    )
    raw = _run(
        tmp_path,
        "student",
        {"layers": 1, "hidden": 16, "heads": 2, "output": "embedding", "embedding_dim": 32},
        {},
    )
    raw["task"] = "sentence-embedding"
    raw["distill"] = {
        "teachers": [{"checkpoint": str(tmp_path / "teacher.safetensors")}],
        "soft_target_weight": 0.0,
        "use_labels": False,
        "terms": [{"kind": "embedding_cosine"}, {"kind": "embedding_mse", "weight": 10.0}],
    }
    result = methods.distill(parse_config(raw), dataset=dataset)
    first, last = result.history[0]["train"]["loss"], result.history[-1]["train"]["loss"]
    assert last["embedding_cosine"] < 0.5 * first["embedding_cosine"]
    assert 0 <= result.final["student"]["test"]["knn_accuracy"] <= 1
