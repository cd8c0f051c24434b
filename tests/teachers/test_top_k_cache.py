"""The causal-LM teacher's top-k cache: equal to the teacher's own top-k, sharded and resumable,
and a distillation from it gives the live sparse loss without running the teacher."""

import pytest
import torch

import kdistill.teachers.cache as cache_module
from kdistill.data import Split
from kdistill.losses.causal_lm import TOP_K_IDS, TOP_K_LOG_PROBS, teacher_top_k
from kdistill.losses.registry import build_term
from kdistill.methods.distill import Distiller
from kdistill.tasks.text_classification import TokenBatchLoader
from kdistill.teachers import Teacher, teacher_top_k_for_split

pytest.importorskip("transformers")
from kdistill.models import create_model  # noqa: E402


def _llama(layers=1):
    torch.manual_seed(layers)
    return create_model("llama", layers=layers, hidden=16, heads=2, vocab_size=30, max_positions=16)


@pytest.fixture()
def split():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 30, (10, 8), generator=generator)
    ids[5:, 5:] = 0
    return Split(ids, torch.zeros(10, dtype=torch.long))


def test_cache_is_the_teachers_top_k_and_resumes_at_a_missing_shard(tmp_path, split, monkeypatch):
    monkeypatch.setattr(cache_module, "TOP_K_SHARD", 4)
    teacher = Teacher([_llama(2)])
    log_probs, ids = teacher_top_k_for_split(teacher, split, tmp_path, k=5, batch_size=3)
    with torch.no_grad():
        expected, expected_ids = teacher_top_k(teacher.members[0](split.inputs), 5)
    assert log_probs.shape == (10, 8, 5)
    assert torch.allclose(log_probs, expected, atol=1e-5) and torch.equal(ids, expected_ids)
    shards = sorted(tmp_path.rglob("shard-*.safetensors"))
    assert len(shards) == 3
    kept = shards[0].stat().st_mtime_ns
    shards[1].unlink()
    again, again_ids = teacher_top_k_for_split(teacher, split, tmp_path, k=5, batch_size=3)
    assert shards[1].exists() and shards[0].stat().st_mtime_ns == kept
    assert torch.equal(again, log_probs) and torch.equal(again_ids, ids)


def test_distilling_from_the_cache_matches_the_live_sparse_loss(tmp_path, split):
    teacher = Teacher([_llama(2)])
    log_probs, ids = teacher_top_k_for_split(teacher, split, tmp_path, k=6)
    student = _llama(1).eval()
    live = build_term("lm_divergence", divergence="jsd", beta=0.3, top_k=6)
    cached = build_term("lm_divergence", divergence="jsd", beta=0.3, top_k=6, cached_top_k=True)
    batch = next(iter(TokenBatchLoader(split, 10, shuffle=False)))
    live_loss = Distiller(student, teacher, [live])(batch).losses["lm_divergence"]
    from_cache = Distiller(
        student,
        teacher,
        [cached],
        cached_teacher_features={TOP_K_LOG_PROBS: log_probs, TOP_K_IDS: ids},
    )
    # The teacher must not run: make it fail if it does.
    teacher.members[0].forward = None  # type: ignore[assignment]
    cache_loss = from_cache(batch).losses["lm_divergence"]
    assert float(cache_loss) == pytest.approx(float(live_loss), rel=1e-4)


def test_two_processes_compute_the_shards_in_turns_and_read_the_same_cache(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from tests.engine.test_distributed import _env

    script = Path(__file__).with_name("top_k_units.py")
    for name, launcher in (
        ("one", [sys.executable]),
        ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node=2"]),
    ):  # fmt: skip
        (tmp_path / name).mkdir()
        done = subprocess.run(
            [*launcher, str(script), str(tmp_path / name)],
            env=_env(tmp_path), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    wrote = {
        rank: json.loads((tmp_path / "two" / f"rank{rank}.json").read_text())["wrote"]
        for rank in (0, 1)
    }
    alone = torch.load(tmp_path / "one" / "rank0.pt", weights_only=True)
    for rank in (0, 1):
        shared = torch.load(tmp_path / "two" / f"rank{rank}.pt", weights_only=True)
        assert torch.equal(shared["ids"], alone["ids"])
        assert torch.allclose(shared["log_probs"], alone["log_probs"], atol=1e-6)
    # 600 texts, 3 shards: 0 and 2 computed by rank 0, 1 by rank 1, each once.
    assert wrote == {0: ["shard-00000.safetensors", "shard-00002.safetensors"],
                     1: ["shard-00001.safetensors"]}  # fmt: skip
