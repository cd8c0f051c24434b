"""Deep Mutual Learning (Zhang et al., CVPR 2018): the KL term of eq. 1-2 / 5-6, gradients that
stop at the detached peers, the cohort run with its alone baselines, and distilling a cohort."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdistill import methods
from kdistill.cli.main import main
from kdistill.config import TrainRunConfig, load_config, parse_config
from kdistill.data import Batch, DataSet
from kdistill.engine.checkpoint import load_model
from kdistill.errors import KDistillError
from kdistill.methods import MutualObjective, run_mutual
from kdistill.methods.mutual import member_seed, mutual_kl, train_alone
from kdistill.models import create_model
from tests.conftest import mnist_subset, write_mnist_npz

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# Three members' logits on a batch of two examples and three classes.
LOGITS = torch.tensor(
    [
        [[2.0, 0.5, -1.0], [0.0, 1.0, 0.3]],
        [[1.0, 1.0, 0.0], [-0.5, 2.0, 0.1]],
        [[0.2, -0.3, 1.5], [1.2, 0.4, 0.0]],
    ]
)


def _softmax(row, temperature=1.0):
    exps = [math.exp(v / temperature) for v in row]
    return [e / sum(exps) for e in exps]


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


@pytest.fixture(scope="module")
def small(mnist) -> DataSet:
    """1,000 real MNIST training and 500 test images."""
    # The first optimizer a process builds imports torch._dynamo (~2 s); pay it once here.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    return mnist_subset(mnist, 1000, 500)


def _config(tmp_path, **mutual):
    raw = {
        "seed": 3,
        "output_dir": str(tmp_path / "dml"),
        "train": {"epochs": 1, "batch_size": 100, "progress": False, "threads": 1},
        "mutual": {
            "members": [
                {"name": "mlp", "kwargs": {"hidden_sizes": [32]}},
                {"name": "mlp", "kwargs": {"hidden_sizes": [16]}},
            ],
            **mutual,
        },
    }
    return parse_config(raw)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_average_peer_kl_matches_hand_computation_eq_6(temperature):
    # Member 0 against the mean distribution of members 1 and 2, times T^2, batch mean.
    expected = 0.0
    for example in range(2):
        peers = [_softmax(LOGITS[m, example].tolist(), temperature) for m in (1, 2)]
        p_avg = [(a + b) / 2 for a, b in zip(*peers, strict=True)]
        own = _softmax(LOGITS[0, example].tolist(), temperature)
        expected += _kl(p_avg, own) / 2
    expected *= temperature**2
    value = mutual_kl(LOGITS[0], LOGITS[1:], temperature, "average")
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_pairwise_kl_matches_hand_computation_eq_5():
    # 1/(K-1) sum_l KL(p_l || p_0), batch mean.
    expected = 0.0
    for example in range(2):
        own = _softmax(LOGITS[0, example].tolist())
        for peer in (1, 2):
            expected += _kl(_softmax(LOGITS[peer, example].tolist()), own) / 2 / 2
    value = mutual_kl(LOGITS[0], LOGITS[1:], 1.0, "pairwise")
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_two_member_kl_is_the_same_for_both_peer_targets():
    # With one peer, eq. 5 and eq. 6 are the same loss, D_KL(p2 || p1) of the paper.
    own, peer = LOGITS[0], LOGITS[1:2]
    assert mutual_kl(own, peer, 1.0, "average").item() == pytest.approx(
        mutual_kl(own, peer, 1.0, "pairwise").item(), rel=1e-7
    )


def test_kl_is_zero_when_members_agree():
    same = LOGITS[0].expand(3, 2, 3)
    assert mutual_kl(same[0], same[1:]).item() == pytest.approx(0.0, abs=1e-7)
    # The same through the objective: two members with identical weights.
    torch.manual_seed(0)
    first = create_model("mlp", hidden_sizes=[8])
    second = create_model("mlp", hidden_sizes=[8])
    second.load_state_dict(first.state_dict())
    batch = Batch(torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]), torch.arange(4))
    losses = MutualObjective([first, second])(batch).losses
    assert losses["kl.0"].item() == pytest.approx(0.0, abs=1e-7)
    assert losses["kl.1"].item() == pytest.approx(0.0, abs=1e-7)


def test_objective_returns_weighted_named_losses_per_member():
    torch.manual_seed(0)
    members = [create_model("mlp", hidden_sizes=[8]) for _ in range(3)]
    batch = Batch(torch.rand(5, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4]), torch.arange(5))
    objective = MutualObjective(members, kl_weight=0.5, temperature=2.0)
    output = objective(batch)
    assert list(output.losses) == ["ce.0", "kl.0", "ce.1", "kl.1", "ce.2", "kl.2"]
    logits = [member(batch.inputs) for member in members]
    for k in range(3):
        peers = torch.stack([logits[j] for j in range(3) if j != k])
        assert output.losses[f"ce.{k}"].item() == pytest.approx(
            F.cross_entropy(logits[k], batch.labels).item(), rel=1e-6
        )
        assert output.losses[f"kl.{k}"].item() == pytest.approx(
            0.5 * mutual_kl(logits[k], peers, 2.0).item(), rel=1e-6
        )
    assert list(objective.evaluation_models()) == ["member0", "member1", "member2"]
    # Training error is read from the cohort ensemble: the log of the mean distribution.
    mean_probs = torch.stack([F.softmax(z, dim=-1) for z in logits]).mean(0)
    assert torch.allclose(output.outputs.exp(), mean_probs, atol=1e-6)
    # kl_weight 0: plain independent cross-entropies, no KL entries.
    assert list(MutualObjective(members, kl_weight=0)(batch).losses) == ["ce.0", "ce.1", "ce.2"]


def test_gradients_reach_every_member_but_not_through_detached_peers():
    torch.manual_seed(0)
    members = [create_model("mlp", hidden_sizes=[8]) for _ in range(2)]
    objective = MutualObjective(members)
    batch = Batch(torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5]), torch.arange(6))

    losses = objective(batch).losses
    sum(losses.values()).backward()
    for member in members:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in member.parameters())
    total_grads = [p.grad.clone() for p in members[0].parameters()]

    # Member 0's KL term alone reaches member 0 only: member 1 is its detached teacher.
    objective.zero_grad(set_to_none=True)
    objective(batch).losses["kl.0"].backward()
    assert all(p.grad is not None for p in members[0].parameters())
    assert all(p.grad is None for p in members[1].parameters())

    # So member 0's gradient from the whole cohort loss is that of its own ce.0 + kl.0.
    objective.zero_grad(set_to_none=True)
    own = objective(batch).losses
    (own["ce.0"] + own["kl.0"]).backward()
    for total, alone in zip(total_grads, members[0].parameters(), strict=True):
        assert torch.allclose(total, alone.grad, atol=1e-7)


def test_a_cohort_needs_two_members():
    with pytest.raises(KDistillError, match="at least 2 members"):
        MutualObjective([create_model("mlp", hidden_sizes=[4])])
    with pytest.raises(KDistillError, match="mutual.members"):
        parse_config({"mutual": {"members": [{"name": "mlp"}]}})


def test_run_mutual_logs_every_member_and_trains_alone_baselines(tmp_path, small):
    config = _config(tmp_path)
    result = run_mutual(config, dataset=small)
    root = tmp_path / "dml"
    record = json.loads((root / "cohort" / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record["train"]["loss"]) == {"ce.0", "kl.0", "ce.1", "kl.1"}
    assert {"member0", "member1"} <= set(record)
    for k in range(2):
        model, metadata = load_model(root / "cohort" / f"member{k}.safetensors")
        assert metadata["recipe"] == config.mutual.members[k].model_dump()
        assert result.test_errors()[k] == record[f"member{k}"]["test"]["errors"]
        assert (root / f"alone-{k}" / "model.safetensors").exists()
    assert result.baseline_test_errors() is not None
    assert all(0 < errors < 500 for errors in result.test_errors() + result.baseline_test_errors())
    summary = json.loads((root / "mutual.json").read_text())
    assert summary["cohort_ensemble"]["test"]["errors"] == result.cohort["test"]["errors"]


def test_without_kl_each_member_ends_exactly_like_its_alone_baseline(tmp_path, small):
    # The baseline is a true control: same initialisation (member_seed), same batches, same
    # optimizer. With kl_weight 0 the cohort is K independent runs and must match them.
    config = _config(tmp_path, kl_weight=0.0)
    run_mutual(config, dataset=small, with_baselines=True)
    root = tmp_path / "dml"
    for k in range(2):
        cohort, _ = load_model(root / "cohort" / f"member{k}.safetensors")
        alone, _ = load_model(root / f"alone-{k}" / "model.safetensors")
        for (name, a), b in zip(
            cohort.state_dict().items(), alone.state_dict().values(), strict=True
        ):
            assert torch.allclose(a, b, atol=1e-6), name
    assert member_seed(3, 0) == 3 and member_seed(3, 1) != member_seed(4, 1)


def test_train_alone_member_zero_is_kdistill_train_with_the_same_seed(tmp_path, small):
    config = _config(tmp_path)
    alone = train_alone(config, 0, tmp_path / "alone", dataset=small)
    plain = TrainRunConfig(
        seed=config.seed,
        data=config.data,
        train=config.train,
        model=config.mutual.members[0],
        output_dir=str(tmp_path / "t"),
    )
    trained = methods.train(plain, dataset=small)
    assert alone.final["model"]["test"]["errors"] == trained.final["model"]["test"]["errors"]
    first, _ = load_model(tmp_path / "alone" / "model.safetensors")
    second, _ = load_model(tmp_path / "t" / "model.safetensors")
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(KDistillError, match="out of range"):
        train_alone(config, 2, tmp_path / "nope", dataset=small)


def test_distill_cohort_config_runs_end_to_end(tmp_path, small, monkeypatch):
    # The shipped pair: train the cohort of configs/mutual/mnist-mlp-mixed.yaml (shrunk), then
    # distil it with configs/mutual/distill-cohort.yaml, whose teachers are the member files.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))
    quick = ["train.epochs=3", "train.progress=false", "train.threads=1"]
    cohort = load_config(
        CONFIGS / "mutual" / "mnist-mlp-mixed.yaml",
        quick
        + [
            "mutual.members=[{name: mlp, kwargs: {hidden_sizes: [32]}}, "
            "{name: mlp, kwargs: {hidden_sizes: [16]}}]"
        ],
    )
    members = run_mutual(cohort, dataset=small, with_baselines=False).test_errors()
    student = load_config(
        CONFIGS / "mutual" / "distill-cohort.yaml",
        quick + ["model.kwargs.hidden_sizes=[32]"],
    )
    result = methods.distill(student, dataset=small)
    assert Path(student.output_dir, "student.safetensors").exists()
    assert len(student.distill.teachers) == 2 and all(0 < n < 250 for n in members)
    # Three short epochs from two weak teachers: well clear of chance (90% errors) is the bar.
    assert 0 < result.errors("student") < 0.8 * len(small.test)


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory, mnist):
    return write_mnist_npz(tmp_path_factory.mktemp("data") / "mnist-small.npz", mnist, 1000, 500)


def test_cli_mutual_prints_member_and_baseline_errors(tmp_path, small_npz, capsys):
    status = main(
        [
            "mutual",
            str(CONFIGS / "mutual" / "mnist-mlp-pair.yaml"),
            "--output-dir",
            str(tmp_path / "cli"),
            "--set",
            f"data.name=npz:{small_npz}",
            "--set",
            "train.epochs=1",
            "--set",
            "train.progress=false",
            "--set",
            "mutual.members=[{name: mlp, kwargs: {hidden_sizes: [16]}}, {name: mlp, kwargs: {hidden_sizes: [16]}}]",
            "--no-baselines",
        ]
    )
    assert status == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(line["test_errors"]) == {"member0", "member1"}
    assert "alone_test_errors" not in line
    assert (tmp_path / "cli" / "cohort" / "member1.safetensors").exists()


def test_cli_mutual_without_a_mutual_section_is_a_one_line_error(tmp_path, capsys):
    config = tmp_path / "plain.yaml"
    config.write_text("seed: 0\n")
    assert main(["mutual", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "no mutual section" in error
