"""Born-Again Networks (Furlanello et al., ICML 2018): the chain of generations, its resume
after a kill, the BAN ensemble of section 3.1, and distilling the generations back into one."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdistill import methods
from kdistill.cli.main import main
from kdistill.config import BornAgainRunConfig, TrainRunConfig, load_config, parse_config
from kdistill.data import DataSet
from kdistill.engine.checkpoint import load_model, save_model
from kdistill.errors import KDistillError
from kdistill.methods import born_again, run_born_again
from kdistill.methods.born_again import DONE_NAME
from kdistill.tasks import predict_logits
from tests.conftest import mnist_subset, write_mnist_npz

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def small(mnist) -> DataSet:
    """1,000 real MNIST training and 500 test images."""
    # The first optimizer a process builds imports torch._dynamo (~2 s); pay it once here.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    return mnist_subset(mnist, 1000, 500)


def _config(tmp_path, epochs=1, **born_again_settings):
    return parse_config(
        {
            "seed": 5,
            "output_dir": str(tmp_path / "ban"),
            "model": {"name": "mlp", "kwargs": {"hidden_sizes": [32]}},
            "train": {"epochs": epochs, "batch_size": 100, "progress": False, "threads": 1},
            "born_again": born_again_settings,
        }
    )


def _spy_on_fit(monkeypatch):
    """Record the folder of every engine call the born-again loop makes."""
    calls: list[tuple[str, bool]] = []
    real = born_again.fit

    def spy(objective, data, settings, *, resume=False):
        calls.append((Path(settings.run_dir).name, resume))
        return real(objective, data, settings, resume=resume)

    monkeypatch.setattr(born_again, "fit", spy)
    return calls


def _weights(path):
    model, _ = load_model(path)
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_generations_are_trained_in_turn_with_the_configured_losses(tmp_path, small):
    result = run_born_again(_config(tmp_path, hard_target_weight=0.5), generations=2, dataset=small)
    root = tmp_path / "ban"
    assert [g.generation for g in result.generations] == [0, 1, 2]
    losses = [
        set(json.loads((root / f"gen-{k}" / "metrics.jsonl").read_text())["train"]["loss"])
        for k in range(3)
    ]
    assert losses == [
        {"hard_targets"},
        {"soft_targets", "hard_targets"},
        {"soft_targets", "hard_targets"},
    ]
    for g in result.generations:
        assert (root / f"gen-{g.generation}" / "model.safetensors").exists()
        assert (root / f"gen-{g.generation}" / DONE_NAME).exists()
        assert 0 < g.errors() < 500
    # Every generation has the teacher's architecture (section 3: "parameterized identically").
    shapes = [{n: t.shape for n, t in _weights(g.model_path).items()} for g in result.generations]
    assert shapes[0] == shapes[1] == shapes[2]
    assert born_again.generation_seed(5, 0) == 5
    assert len({born_again.generation_seed(5, k) for k in range(4)}) == 4
    summary = json.loads((root / "born_again.json").read_text())
    assert [e["generations"] for e in summary["ensembles"]] == [[1], [1, 2]]
    # hard_target_weight 0: the distillation loss of section 3 alone, no label term.
    pure = run_born_again(
        _config(tmp_path / "pure", hard_target_weight=0.0), generations=1, dataset=small
    )
    record = json.loads((pure.generations[1].run_dir / "metrics.jsonl").read_text())
    assert set(record["train"]["loss"]) == {"soft_targets"}


def test_resume_after_a_lost_marker_does_not_retrain_earlier_generations(
    tmp_path, small, monkeypatch
):
    config = _config(tmp_path)
    first = run_born_again(config, generations=2, dataset=small)
    root = tmp_path / "ban"
    kept = {k: (root / f"gen-{k}" / "model.safetensors") for k in (0, 1)}
    mtimes = {k: path.stat().st_mtime_ns for k, path in kept.items()}
    weights = {k: _weights(path) for k, path in kept.items()}
    (root / "gen-2" / DONE_NAME).unlink()  # as if killed after training, before the marker

    calls = _spy_on_fit(monkeypatch)
    second = run_born_again(config, generations=3, resume=True, dataset=small)
    assert [name for name, _ in calls] == ["gen-2", "gen-3"]
    assert [g.reused for g in second.generations] == [True, True, False, False]
    for k, path in kept.items():
        assert path.stat().st_mtime_ns == mtimes[k]
        assert all(torch.equal(weights[k][n], t) for n, t in _weights(path).items())
    # gen-2 finished all its epochs before: resuming its checkpoint gives the same model.
    assert second.generations[2].errors() == first.generations[2].errors()
    assert len(second.ensembles) == 3


def test_a_run_killed_mid_generation_resumes_in_that_generation(tmp_path, small, monkeypatch):
    config = _config(tmp_path, epochs=2)
    real = born_again.fit

    def killed_in_gen_2_epoch_2(objective, data, settings, *, resume=False):
        if Path(settings.run_dir).name == "gen-2":
            forward, steps = objective.forward, {"n": 0}

            def dying_forward(batch):
                steps["n"] += 1
                if steps["n"] > 1 + 10 + 3:  # prepare + epoch 1 (10 batches) + 3 of epoch 2
                    raise KeyboardInterrupt
                return forward(batch)

            objective.forward = dying_forward
        return real(objective, data, settings, resume=resume)

    monkeypatch.setattr(born_again, "fit", killed_in_gen_2_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_born_again(config, generations=3, dataset=small)
    root = tmp_path / "ban"
    assert (root / "gen-1" / DONE_NAME).exists() and not (root / "gen-2" / DONE_NAME).exists()
    gen1_mtime = (root / "gen-1" / "model.safetensors").stat().st_mtime_ns

    calls = _spy_on_fit(monkeypatch)
    result = run_born_again(config, generations=3, resume=True, dataset=small)
    # gen-2 continues from its epoch-1 checkpoint; gen-0 and gen-1 are read back.
    assert calls == [("gen-2", True), ("gen-3", False)]
    assert (root / "gen-1" / "model.safetensors").stat().st_mtime_ns == gen1_mtime
    epochs = [
        json.loads(line)["epoch"]
        for line in (root / "gen-2" / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2]
    assert [g.reused for g in result.generations] == [True, True, False, False]


def test_a_changed_teacher_invalidates_its_students(tmp_path, small, monkeypatch):
    config = _config(tmp_path)
    run_born_again(config, generations=2, dataset=small)
    root = tmp_path / "ban"
    # As if gen-1 had been retrained to other weights (e.g. nondeterministically on a GPU): a
    # new, consistent model file and marker.
    model, metadata = load_model(root / "gen-1" / "model.safetensors")
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    save_model(root / "gen-1" / "model.safetensors", model, metadata["recipe"])
    marker = json.loads((root / "gen-1" / DONE_NAME).read_text())
    marker["result"]["model_sha256"] = born_again.file_sha256(root / "gen-1" / "model.safetensors")
    (root / "gen-1" / DONE_NAME).write_text(json.dumps(marker))
    calls = _spy_on_fit(monkeypatch)
    run_born_again(config, generations=2, resume=True, dataset=small)
    # gen-2 learnt from the old gen-1: its marker and its checkpoint are stale, so it is
    # trained again from scratch (not resumed); gen-0 and gen-1 are kept.
    assert calls == [("gen-2", False)]


def test_resume_with_a_different_config_is_refused(tmp_path, small):
    run_born_again(_config(tmp_path), generations=1, dataset=small)
    changed = _config(tmp_path, temperature=3.0)
    with pytest.raises(KDistillError, match="different born_again.temperature"):
        run_born_again(changed, generations=1, resume=True, dataset=small)


def test_reported_ban_ensembles_match_the_saved_generations(tmp_path, small):
    result = run_born_again(_config(tmp_path), generations=2, dataset=small)
    probs = [
        F.softmax(predict_logits(load_model(g.model_path)[0], small.test), dim=1)
        for g in result.generations[1:]
    ]
    for k in (1, 2):
        predictions = torch.stack(probs[:k]).mean(0).argmax(1)
        assert result.ensemble_test_errors()[k - 1] == int((predictions != small.test.labels).sum())


def test_generation_zero_is_kdistill_train_and_can_be_given(tmp_path, small, monkeypatch):
    config = _config(tmp_path)
    plain = TrainRunConfig(
        seed=config.seed,
        data=config.data,
        model=config.model,
        train=config.train,
        output_dir=str(tmp_path / "plain"),
    )
    methods.train(plain, dataset=small)
    teacher = tmp_path / "plain" / "model.safetensors"
    calls = _spy_on_fit(monkeypatch)
    given = _config(tmp_path, teacher=str(teacher))
    result = run_born_again(given, generations=1, dataset=small)
    assert [name for name, _ in calls] == ["gen-1"]
    assert result.generations[0].model_path == teacher and result.generations[0].reused
    # Training generation 0 here gives the very same model: same seed, same batches.
    trained = run_born_again(_config(tmp_path / "own"), generations=1, dataset=small)
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            _weights(teacher).values(),
            _weights(trained.generations[0].model_path).values(),
            strict=True,
        )
    )
    assert trained.generations[1].errors() == result.generations[1].errors()


def test_bad_settings_are_one_line_errors(tmp_path, small):
    with pytest.raises(KDistillError, match="at least 1 generation"):
        run_born_again(_config(tmp_path), generations=0, dataset=small)
    with pytest.raises(KDistillError, match="both 0"):
        _config(tmp_path, soft_target_weight=0, hard_target_weight=0)
    with pytest.raises(KDistillError, match="born_again section"):
        run_born_again(TrainRunConfig(), dataset=small)
    with pytest.raises(KDistillError, match="this verb does not read it"):
        load_config(None, ["distill.teachers=[{checkpoint: x}]"], schema=BornAgainRunConfig)


def test_distill_generations_config_runs_end_to_end(tmp_path, small, monkeypatch):
    # The shipped pair: configs/born-again/mnist-mlp.yaml (shrunk), then
    # configs/born-again/distill-generations.yaml, whose teachers are gen-1..gen-3.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))
    quick = [
        "train.epochs=2",
        "train.progress=false",
        "train.threads=1",
        "model.kwargs.hidden_sizes=[32]",
    ]
    chain = run_born_again(
        load_config(CONFIGS / "born-again" / "mnist-mlp.yaml", quick), dataset=small
    )
    assert len(chain.generations) == 4
    student = load_config(CONFIGS / "born-again" / "distill-generations.yaml", quick)
    assert [t.checkpoint for t in student.distill.teachers] == [
        str(g.model_path) for g in chain.generations[1:]
    ]
    result = methods.distill(student, dataset=small)
    assert Path(student.output_dir, "student.safetensors").exists()
    # Two short epochs: well clear of chance (90% errors) is the bar.
    assert 0 < result.errors("student") < 0.8 * len(small.test)


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory, mnist):
    return write_mnist_npz(tmp_path_factory.mktemp("data") / "mnist-small.npz", mnist, 1000, 500)


def test_cli_born_again_prints_generation_and_ensemble_errors(tmp_path, small_npz, capsys):
    arguments = [
        "born-again",
        str(CONFIGS / "born-again" / "mnist-mlp.yaml"),
        "--generations",
        "2",
        "--output-dir",
        str(tmp_path / "cli"),
        "--set",
        f"data.name=npz:{small_npz}",
        "--set",
        "train.epochs=1",
        "--set",
        "train.progress=false",
        "--set",
        "model.kwargs.hidden_sizes=[16]",
    ]
    assert main(arguments) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(line["test_errors"]) == ["gen-0", "gen-1", "gen-2"]
    assert list(line["ensemble_test_errors"]) == ["gens-1..1", "gens-1..2"]
    assert line["ensemble_test_errors"]["gens-1..1"] == line["test_errors"]["gen-1"]
    assert main(arguments + ["--resume"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == line
    assert main(arguments[:2] + ["--generations", "0"]) == 2
    assert "at least 1 generation" in capsys.readouterr().err


def test_markers_written_before_the_shared_harness_are_still_read(tmp_path, small, monkeypatch):
    config = _config(tmp_path)
    run_born_again(config, generations=1, dataset=small)
    for generation in (0, 1):
        path = tmp_path / "ban" / f"gen-{generation}" / DONE_NAME
        saved = json.loads(path.read_text())
        path.write_text(json.dumps({**saved["identity"], **saved["result"]}))  # the old layout
    calls = _spy_on_fit(monkeypatch)
    result = run_born_again(config, generations=1, resume=True, dataset=small)
    assert calls == [] and all(g.reused for g in result.generations)
