"""Network Augmentation: the step's gradient is autograd of L(base) + alpha L(augmented),
channel sorting moves the optimizer state with the channels, augmentation stops on time,
batch norm is re-estimated, and only the base is saved."""

import json

import torch
import torch.nn.functional as F

from kdistill import methods
from kdistill.config import parse_config
from kdistill.data import Batch
from kdistill.engine import load_model
from kdistill.methods.netaug import NetAugObjective, augmented_epochs
from kdistill.models import create_model, make_sliceable
from tests.conftest import mnist_subset


def _batch(count=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return Batch(
        inputs=torch.rand(count, 1, 28, 28, generator=generator),
        labels=torch.randint(0, 10, (count,), generator=generator),
        indices=torch.arange(count),
    )


def _objective(hidden=(5, 4), **options):
    torch.manual_seed(0)
    model = make_sliceable(create_model("mlp", hidden_sizes=list(hidden)), 2.6)
    return NetAugObjective(model, **options)


def test_the_step_gradient_is_autograd_of_the_summed_loss_by_hand():
    objective = _objective(aug_weight=0.7)
    objective.train()
    batch = _batch()
    torch.manual_seed(5)
    output = objective(batch)
    assert set(output.losses) == {"hard_targets", "augmented.hard_targets"}
    sum(output.losses.values()).backward()
    torch.manual_seed(5)
    widths = objective.sample_widths()
    layers = [(layer.weight, layer.bias) for layer in objective.model.linears()]
    weights = [
        (w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_())
        for w, b in layers
    ]

    def by_hand(hidden_widths):
        h, fan_in = batch.inputs.flatten(1), 784
        for (w, b), width in zip(weights[:-1], hidden_widths, strict=True):
            h, fan_in = F.relu(h @ w[:width, :fan_in].T + b[:width]), width
        w, b = weights[-1]
        return h @ w[:, :fan_in].T + b

    loss = F.cross_entropy(by_hand([5, 4]), batch.labels) + 0.7 * F.cross_entropy(
        by_hand(widths), batch.labels
    )
    loss.backward()
    for (weight, bias), (hand_w, hand_b) in zip(layers, weights, strict=True):
        assert torch.allclose(weight.grad, hand_w.grad, atol=1e-6)
        assert torch.allclose(bias.grad, hand_b.grad, atol=1e-6)


def test_sorting_at_an_epoch_start_moves_momentum_with_the_channels():
    objective = _objective()
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.1, momentum=0.9)
    objective.train()
    sum(objective(_batch()).losses.values()).backward()
    optimizer.step()
    first = objective.model.linears()[0]
    # Make each channel's momentum equal to its weights: after a joint permutation it still is.
    optimizer.state[first.weight]["momentum_buffer"].copy_(first.weight.detach())
    objective.start_epoch(0, 4, optimizer)  # the first epoch keeps the initial order
    objective.start_epoch(1, 4, optimizer)
    norms = first.weight.abs().sum(dim=1)
    assert torch.all(norms[:-1] >= norms[1:])
    assert torch.equal(optimizer.state[first.weight]["momentum_buffer"], first.weight.detach())


def test_augmentation_stops_after_the_fraction():
    assert augmented_epochs(10, 0.5) == 5
    assert augmented_epochs(3, 0.5) == 2
    assert augmented_epochs(4, 0.0) == 0
    objective = _objective(augment_epochs=2)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)
    objective.train()
    objective.start_epoch(1, 4, optimizer)
    assert "augmented.hard_targets" in objective(_batch()).losses
    objective.start_epoch(2, 4, optimizer)
    assert set(objective(_batch()).losses) == {"hard_targets"}


def test_batch_norm_is_re_estimated_as_the_mean_of_the_batches_statistics():
    torch.manual_seed(0)
    model = make_sliceable(create_model("cnn", channels=[2, 3]), 2.0)
    objective = NetAugObjective(model, width_multipliers=[1.0, 2.0], bn_batches=2)
    batches = [_batch(16, seed) for seed in (1, 2, 3)]
    objective.finish_training(batches)  # type: ignore[arg-type]
    first_conv, first_norm = model.blocks()[0]
    means = [
        F.conv2d(b.inputs, first_conv.weight[:2], padding=1).mean(dim=(0, 2, 3))
        for b in batches[:2]
    ]
    assert torch.allclose(first_norm.running_mean[:2], (means[0] + means[1]) / 2, atol=1e-6)
    assert first_norm.momentum == 0.1  # restored


def test_netaug_with_kd_saves_only_the_base_as_a_plain_model(tmp_path, mnist, monkeypatch):
    monkeypatch.setenv("KDISTILL_CACHE", str(tmp_path / "cache"))
    dataset = mnist_subset(mnist, 600, 200)
    common = {"train": {"epochs": 2, "batch_size": 100, "progress": False, "threads": 1}}
    teacher = methods.train(
        parse_config(
            {
                **common,
                "output_dir": str(tmp_path / "teacher"),
                "model": {"name": "mlp", "kwargs": {"hidden_sizes": [64]}},
            }
        ),
        dataset=dataset,
    )
    config = parse_config(
        {
            **common,
            "output_dir": str(tmp_path / "netaug"),
            "model": {"name": "cnn", "kwargs": {"channels": [2, 4]}},
            "netaug": {
                "bn_batches": 2,
                "distill": {
                    "teachers": [{"checkpoint": str(teacher.run_dir / "model.safetensors")}],
                    "temperature": 4,
                },
            },
        }
    )
    result = methods.run(config, dataset=dataset)
    record = json.loads((tmp_path / "netaug" / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record["train"]["loss"]) == {
        "soft_targets",
        "hard_targets",
        "augmented.soft_targets",
        "augmented.hard_targets",
    }
    model, meta = load_model(tmp_path / "netaug" / "model.safetensors")
    assert type(model).__name__ == "SmallCNN"
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in create_model("cnn", channels=[2, 4]).parameters()
    )
    assert meta["augment_epochs"] == 1
    assert set(result.final) == {"model"}


def test_an_interrupted_netaug_run_resumes_to_the_same_weights(tmp_path, mnist, monkeypatch):
    """The sampled widths (torch's RNG), the channel sorting and the optimizer state it moves
    all survive a resume: the interrupted run ends with the uninterrupted run's weights."""
    from kdistill.engine import resume

    dataset = mnist_subset(mnist, 400, 100)

    def config(name):
        return parse_config(
            {
                "output_dir": str(tmp_path / name),
                "model": {"name": "cnn", "kwargs": {"channels": [2, 4]}},
                "train": {"epochs": 4, "batch_size": 50, "progress": False, "threads": 1},
                "netaug": {"bn_batches": 2},
            }
        )

    methods.run(config("straight"), dataset=dataset)
    save = resume.save_checkpoint

    def save_then_stop(loop, epoch, settings, history):
        save(loop, epoch, settings, history)
        raise KeyboardInterrupt  # after the first epoch's checkpoint

    monkeypatch.setattr(resume, "save_checkpoint", save_then_stop)
    try:
        methods.run(config("killed"), dataset=dataset)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(resume, "save_checkpoint", save)
    methods.run(config("killed"), dataset=dataset, resume=True)
    straight, _ = load_model(tmp_path / "straight" / "model.safetensors")
    resumed, _ = load_model(tmp_path / "killed" / "model.safetensors")
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
