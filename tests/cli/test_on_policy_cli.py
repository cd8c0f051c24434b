"""``kdistill distill`` with ``distill.on_policy`` (GKD) from a YAML file, end to end: a tiny
Llama student learns a tiny Llama teacher on counting sequences, half its batches generated
by itself; the checkpoint holds the on-policy count the seed dictates."""

import json

import pytest
import torch
import yaml

from kdistill.cli.main import main
from kdistill.data import DataSet, prepare
from kdistill.engine import save_model
from kdistill.engine.checkpoint import load_tensors
from kdistill.methods.on_policy import on_policy_choices

pytest.importorskip("transformers")
from kdistill.models import create_model  # noqa: E402
from tests.methods.test_causal_lm_distill import TINY, _sequences  # noqa: E402


def test_kdistill_distill_runs_on_policy_batches_from_a_config(tmp_path, monkeypatch):
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))
    dataset = DataSet("counting", _sequences(96, 0), _sequences(32, 1), 1, "counting-96")
    # The data set a config names is loaded by name; this one is built here instead.
    monkeypatch.setattr(prepare, "load_dataset", lambda *args, **kwargs: dataset)
    torch.manual_seed(0)
    recipe = {"name": "llama", "kwargs": {**TINY, "layers": 2, "hidden": 32, "heads": 2}}
    save_model(tmp_path / "teacher.safetensors", create_model("llama", **recipe["kwargs"]), recipe)
    config = {
        "task": "language-modeling",
        "seed": 3,
        "output_dir": str(tmp_path / "gkd"),
        "data": {"name": "counting"},
        "model": {"name": "llama", "kwargs": {**TINY, "layers": 1, "hidden": 32, "heads": 2}},
        "train": {
            "epochs": 3,
            "batch_size": 16,
            "optimizer": {"name": "adamw", "lr": 3e-3},
            "threads": 1,
            "progress": False,
        },
        "distill": {
            "teachers": [{"checkpoint": str(tmp_path / "teacher.safetensors")}],
            "soft_target_weight": 0.0,
            "use_labels": False,
            "terms": [{"kind": "lm_divergence", "divergence": "jsd", "top_k": 8}],
            "on_policy": {"fraction": 0.5, "max_new_tokens": 6, "prompt_tokens": 4},
        },
    }
    path = tmp_path / "gkd.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["distill", str(path)]) == 0
    run = tmp_path / "gkd"
    tensors, saved = load_tensors(run / "checkpoint.safetensors")
    steps = 3 * 6  # 96 texts in batches of 16
    assert int(tensors["objective.on_policy_steps"]) == steps == saved["step"]
    assert int(tensors["objective.on_policy_batches"]) == sum(on_policy_choices(3, 0.5, steps))
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    losses = [record["train"]["loss"]["lm_divergence"] for record in records]
    assert losses[-1] < losses[0]
    final = json.loads((run / "final.json").read_text())["student"]["test"]
    assert final["tokens"] > 0 and final["perplexity"] > 1
    assert (run / "student.safetensors").is_file()
