"""GKD's on-policy batches on the one engine: which batches are on-policy follows from the
seed and the step only (and survives a resume), lambda = 0 is exactly off-policy
distillation, lambda = 1 trains on the student's generated tokens only, and a run goes end
to end from a config."""

import json

import pytest
import torch

from kdistill import methods
from kdistill.config import OnPolicyConfig, parse_config
from kdistill.data import Batch, DataSet
from kdistill.engine import save_model, trainer
from kdistill.engine.checkpoint import load_tensors
from kdistill.errors import KDistillError, Terminated
from kdistill.losses.causal_lm import TokenDivergence, forward_kl
from kdistill.methods.distill import Distiller
from kdistill.methods.on_policy import (
    OnPolicyDistiller,
    check_on_policy,
    check_positions,
    is_on_policy,
    on_policy_choices,
)
from kdistill.teachers import Teacher

pytest.importorskip("transformers")
from kdistill.models import create_model  # noqa: E402
from tests.methods.test_causal_lm_distill import TINY, _config, _sequences  # noqa: E402

ON_POLICY = {"fraction": 0.5, "max_new_tokens": 6, "temperature": 1.0, "prompt_tokens": 4}


def _tiny_pair(seed: int = 0):
    torch.manual_seed(seed)
    teacher = create_model("llama", **TINY, layers=2, hidden=32, heads=2)
    student = create_model("llama", **TINY, layers=1, hidden=32, heads=2)
    return Teacher([teacher.eval()]), student


def _batch(count: int = 16) -> Batch:
    split = _sequences(count, 3)
    return Batch(split.inputs, split.labels, torch.arange(count))


def test_the_choice_of_on_policy_steps_depends_on_seed_and_step_only():
    choices = on_policy_choices(0, 0.5, 400)
    assert choices == on_policy_choices(0, 0.5, 400)
    assert [is_on_policy(0, step, 0.5) for step in range(400)] == choices
    assert not any(on_policy_choices(0, 0.0, 400))
    assert all(on_policy_choices(0, 1.0, 400))
    patterns = {tuple(on_policy_choices(seed, 0.3, 40)) for seed in range(20)}
    assert len(patterns) > 3  # the phase follows the seed
    for fraction in (0.1, 0.3, 0.5, 0.75):
        for seed in range(5):
            counts = torch.tensor(on_policy_choices(seed, fraction, 200)).cumsum(0)
            # Every run of n steps, however short, has lambda n on-policy steps, +- 1.
            expected = fraction * torch.arange(1, 201)
            assert (counts - expected).abs().max() < 1


def test_fraction_zero_gives_exactly_the_off_policy_loss():
    teacher, student = _tiny_pair()
    term = TokenDivergence("jsd", beta=0.5)
    plain = Distiller(student, teacher, [term]).train()
    settings = OnPolicyConfig(**{**ON_POLICY, "fraction": 0.0})
    on_policy = OnPolicyDistiller(student, teacher, [term], settings, seed=0).train()
    batch = _batch()
    for _ in range(3):
        expected = plain(batch).losses["lm_divergence"]
        assert torch.equal(on_policy(batch).losses["lm_divergence"], expected)
    assert int(on_policy.on_policy_steps) == 3 and int(on_policy.on_policy_batches) == 0


def test_fraction_one_trains_on_the_generated_tokens_only():
    teacher, student = _tiny_pair()
    settings = OnPolicyConfig(**{**ON_POLICY, "fraction": 1.0, "max_new_tokens": 24})
    objective = OnPolicyDistiller(
        student, teacher, [TokenDivergence("forward_kl")], settings, seed=0
    ).train()
    batch = _batch()
    loss = objective(batch).losses["lm_divergence"]
    generated = objective.generate_batch(batch, step=0)  # the same draws as step 0's
    ids, mask = generated.inputs, generated.target_mask
    assert ids.shape == (16, 4 + 24) and torch.equal(ids[:, :4], batch.inputs[:, :4])
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    assert torch.equal(mask, (positions >= 4) & (ids != 0))
    # Some continuations ended with the end-of-text id and were padded after it, some did not.
    ended = (ids[:, 4:] == 0).any(dim=1)
    assert ended.any() and not ended.all()
    assert all(not ids[row, 4:][ids[row, 4:].eq(0).cumsum(0).gt(0)].any() for row in range(16))
    with torch.no_grad():  # by hand: forward KL over the positions that predict a target
        teacher_log = torch.log_softmax(teacher.members[0](ids)[:, :-1], -1)
        student_log = torch.log_softmax(student(ids)[:, :-1], -1)
        per_token = forward_kl(teacher_log, student_log)
        expected = (per_token * mask[:, 1:]).sum() / mask[:, 1:].sum()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    assert int(objective.on_policy_batches) == 1


def test_cached_top_k_terms_read_the_live_teacher_on_generated_batches():
    teacher, student = _tiny_pair()
    settings = OnPolicyConfig(**{**ON_POLICY, "fraction": 1.0})
    term = TokenDivergence("reverse_kl", top_k=8, cached_top_k=True)
    stale = torch.zeros(16, 12, 8)  # a cache of the data's texts: wrong for generated ones
    cache = {request: stale.long() if "ids" in request.path else stale for request in term.reads()}
    objective = OnPolicyDistiller(
        student, teacher, [term], settings, seed=0, cached_teacher_features=cache
    ).train()
    loss = objective(_batch()).losses["lm_divergence"]
    live = TokenDivergence("reverse_kl", top_k=8)
    reference = OnPolicyDistiller(student, teacher, [live], settings, seed=0).train()
    torch.testing.assert_close(loss, reference(_batch()).losses["lm_divergence"])


@pytest.fixture()
def setting(tmp_path, monkeypatch):
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    recipe = {"name": "llama", "kwargs": {**TINY, "layers": 2, "hidden": 32, "heads": 2}}
    teacher = create_model(recipe["name"], **recipe["kwargs"])
    teacher_file = tmp_path / "teacher.safetensors"
    save_model(teacher_file, teacher, recipe, task="language-modeling")
    dataset = DataSet("counting", _sequences(96, 0), _sequences(32, 1), 1, "counting-96")
    return teacher_file, dataset


JSD = {"kind": "lm_divergence", "divergence": "jsd", "beta": 0.5, "top_k": 8, "cached_top_k": True}


def _on_policy_config(tmp_path, name, teacher_file, vocab=40, **on_policy):
    raw = _config(tmp_path, name, teacher_file, [JSD], vocab=vocab).model_dump(mode="json")
    raw["distill"]["on_policy"] = {**ON_POLICY, **on_policy}
    raw["train"]["epochs"] = 2
    return parse_config(raw)


def _stop_at_step(monkeypatch, step: int) -> None:
    """The loop's ``stop_requested`` answers True (as after SIGTERM) at training step ``step``."""
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] == step

    monkeypatch.setattr(trainer, "stop_requested", stop)


def test_a_resumed_run_makes_the_same_choices_and_ends_with_the_same_weights(
    tmp_path, setting, monkeypatch
):
    teacher_file, dataset = setting
    straight = methods.distill(
        _on_policy_config(tmp_path, "straight", teacher_file), dataset=dataset
    )
    config = _on_policy_config(tmp_path, "stopped", teacher_file)
    with monkeypatch.context() as patch:
        _stop_at_step(patch, 4)
        with pytest.raises(Terminated):
            methods.distill(config, dataset=dataset)
    stopped, saved = load_tensors(tmp_path / "stopped" / "checkpoint.safetensors")
    assert saved["step"] == 4 and int(stopped["objective.on_policy_steps"]) == 4
    resumed = methods.distill(config, resume=True, dataset=dataset)
    steps = 2 * 6  # 96 texts in batches of 16, two epochs
    expected = sum(on_policy_choices(0, 0.5, steps))
    for run in ("straight", "stopped"):
        tensors, _ = load_tensors(tmp_path / run / "checkpoint.safetensors")
        assert int(tensors["objective.on_policy_steps"]) == steps
        assert int(tensors["objective.on_policy_batches"]) == expected
    a, _ = load_tensors(tmp_path / "straight" / "student.safetensors")
    b, _ = load_tensors(tmp_path / "stopped" / "student.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)
    assert 0 < expected < steps
    assert resumed.final == straight.final
    logged = [json.loads(line) for line in (tmp_path / "stopped" / "metrics.jsonl").open()]
    assert [record["epoch"] for record in logged] == [1, 2]


def test_a_run_with_fraction_zero_ends_with_the_weights_of_a_run_without_on_policy(
    tmp_path, setting
):
    teacher_file, dataset = setting
    methods.distill(
        _on_policy_config(tmp_path, "zero", teacher_file, fraction=0.0), dataset=dataset
    )
    raw = _on_policy_config(tmp_path, "off", teacher_file).model_dump(mode="json")
    raw["distill"]["on_policy"] = None
    methods.distill(parse_config(raw), dataset=dataset)
    a, _ = load_tensors(tmp_path / "zero" / "student.safetensors")
    b, _ = load_tensors(tmp_path / "off" / "student.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_on_policy_with_a_student_on_another_vocabulary_is_refused_in_one_line(tmp_path, setting):
    teacher_file, dataset = setting
    config = _on_policy_config(tmp_path, "wrong", teacher_file, vocab=50)
    with pytest.raises(KDistillError) as error:
        methods.distill(config, dataset=dataset)
    assert "\n" not in str(error.value) and "vocab_size: 40" in str(error.value)


def test_on_policy_needs_a_term_that_reads_the_teacher(tmp_path, setting):
    teacher_file, dataset = setting
    raw = _on_policy_config(tmp_path, "ce", teacher_file).model_dump(mode="json")
    raw["distill"]["terms"] = [{"kind": "lm_cross_entropy"}]
    with pytest.raises(KDistillError, match="no term reads the teacher"):
        methods.distill(parse_config(raw), dataset=dataset)
    assert not (tmp_path / "ce").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "classification"}, "needs task: language-modeling"),
        ({"distill": {"cache_teacher_features": True}}, "cache_teacher_features=false"),
        ({"distill": {"cache_teacher_logits": "always"}}, "cache_teacher_logits=auto or never"),
    ],
    ids=["classification", "cached-features", "cached-logits"],
)
def test_what_on_policy_batches_cannot_use_is_refused_in_one_line(tmp_path, change, message):
    raw = _on_policy_config(tmp_path, "x", tmp_path / "t.safetensors").model_dump(mode="json")
    raw["task"] = change.get("task", raw["task"])
    raw["distill"].update(change.get("distill", {}))
    with pytest.raises(KDistillError, match=message) as error:
        check_on_policy(parse_config(raw), [TokenDivergence("jsd")])
    assert "\n" not in str(error.value)


def test_continuations_longer_than_the_position_table_are_refused_in_one_line(tmp_path, setting):
    teacher_file, dataset = setting  # TINY models have 32 positions
    config = _on_policy_config(tmp_path, "long", teacher_file, prompt_tokens=8, max_new_tokens=25)
    with pytest.raises(
        KDistillError, match="= 33 is more than the 32 positions of the model"
    ) as error:
        methods.distill(config, dataset=dataset)
    assert "\n" not in str(error.value) and "max_positions" in str(error.value)
    assert not (tmp_path / "long").exists()
    settings = OnPolicyConfig(fraction=0.5, max_new_tokens=24, prompt_tokens=8)
    teacher, student = _tiny_pair()
    check_positions(settings, {"model": student, "teacher": teacher})  # 32 fits exactly
