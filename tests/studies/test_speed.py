"""kdistill bench speed: the FLOP count, the hand-written yardstick and one small run."""

import json

import torch

from kdistill.models import create_model
from kdistill.studies.speed import SpeedSettings, run_speed_benchmark, write_speed_report
from kdistill.studies.speed.reference_loop import hand_written_epoch
from kdistill.studies.speed.runner import ROWS, linear_shapes, training_flops


def test_training_flops_count_every_product_but_the_first_layers_input_gradient():
    shapes = linear_shapes(create_model("mlp", hidden_sizes=[800, 800]))
    assert shapes == [(784, 800), (800, 800), (800, 10)]
    macs = 784 * 800 + 800 * 800 + 800 * 10
    # forward + weight gradients: 2 x macs products each; input gradients skip layer 1.
    assert training_flops(shapes) == 2 * macs + 2 * macs + 2 * (800 * 800 + 800 * 10)


def test_hand_written_loop_trains_the_student(mnist):
    torch.manual_seed(0)
    teacher = create_model("mlp", hidden_sizes=[32])
    student = create_model("mlp", hidden_sizes=[16])
    images = mnist.train.inputs[:512].float() / 255
    labels = mnist.train.labels[:512]
    before = student.layers[1].weight.clone()
    rate = hand_written_epoch(
        teacher, student, images, labels, batch_size=128, temperature=4.0, alpha=0.9, lr=0.1
    )
    assert rate > 0
    assert not torch.equal(before, student.layers[1].weight)
    assert not teacher.training


def test_small_speed_run_measures_every_row_and_writes_the_report(tmp_path):
    settings = SpeedSettings(
        output_dir=tmp_path,
        rounds=1,
        train_size=512,
        jitter_train_size=64,
        profile_steps=2,
        beyond_epochs=60,
        layout_train_size=100,
    )
    results = run_speed_benchmark(settings)
    assert set(results["rows"]) == set(ROWS)
    hand = results["rows"][ROWS[0]]
    assert hand["ratio_to_hand_loop"] == 1.0
    for row in results["rows"].values():
        assert row["median"] > 0 and 0 < row["fraction_of_same_shape_matmul"]
    assert [r["factor"] for r in results["scaling"]["transfer_set"]] == [1, 2, 4]
    jitter = results["jitter_cache"]
    assert jitter["timed_examples"] == 64 and jitter["scaled_to_examples"] == 512
    # 25 shifts x 512 images x 10 classes of float32, scaled from the 64 timed.
    assert abs(jitter["cache_megabytes"] - 25 * 512 * 10 * 4 / 2**20) < 1e-9
    assert any(r["operator"] in ("aten::mm", "aten::addmm") for r in results["profile"])
    layout = results["memory_layout"]
    assert layout["examples"] == 100 and len(layout["ratio_per_round"]) == 1
    assert layout["ratio_median"] == (
        layout["samples_per_second"]["channels_last"][0]
        / layout["samples_per_second"]["contiguous"][0]
    )
    readme = write_speed_report(results, tmp_path)
    text = readme.read_text()
    assert "## Targets" in text and "hand-written loop" in text and "channels-last" in text
    assert json.loads((tmp_path / "results.json").read_text())["train_examples"] == 512
