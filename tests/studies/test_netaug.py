"""The NetAug benchmark: each cell is the right verb's config, and the verdict on the lecture's
claims follows the paired differences."""

from pathlib import Path

from kdistill.config import DistillRunConfig, NetAugRunConfig, TrainRunConfig
from kdistill.studies.netaug.plan import cell_config
from kdistill.studies.netaug.report import render_report, summarise, verdicts


def test_each_method_is_its_verbs_config():
    teacher = Path("t/model.safetensors")
    configs = {
        method: cell_config("mnist", "mlp-30-30", method, 1, 2, teacher)
        for method in ("baseline", "kd", "netaug", "netaug-kd")
    }
    assert type(configs["baseline"]) is TrainRunConfig
    assert isinstance(configs["kd"], DistillRunConfig)
    assert (
        isinstance(configs["netaug"], NetAugRunConfig) and configs["netaug"].netaug.distill is None
    )
    both = configs["netaug-kd"]
    assert isinstance(both, NetAugRunConfig) and both.netaug.distill is not None
    assert both.netaug.distill.teachers[0].checkpoint == str(teacher)


def _runs(train, test):
    return [
        {"train_errors": a, "train_total": 100, "test_errors": b, "test_total": 100, "seconds": 1}
        for a, b in zip(train, test, strict=True)
    ]


def test_the_verdict_follows_the_paired_differences():
    cells = {
        "mnist": {
            "mlp-30-30": {  # tiny: NetAug lowers both errors
                "baseline": _runs([10, 12], [20, 22]),
                "kd": _runs([10, 12], [20, 22]),
                "netaug": _runs([8, 9], [18, 19]),
                "netaug-kd": _runs([10, 12], [20, 22]),
            },
            "mlp-800-800": {  # large: training error down, test error up
                "baseline": _runs([2, 2], [5, 6]),
                "kd": _runs([2, 2], [5, 6]),
                "netaug": _runs([1, 1], [7, 8]),
                "netaug-kd": _runs([2, 2], [5, 6]),
            },
        }
    }
    summary = summarise(cells)
    assert summary["mnist"]["mlp-30-30"]["netaug"]["delta_test"] == (-2.5, 0.7071067811865476)
    lines = verdicts(summary)
    assert "**held**" in lines[0] and "lower by 2.50 pp" in lines[0]
    assert "**held**" in lines[1] and "higher by 2.00 pp" in lines[1]
    report = {
        "command": "kdistill bench netaug",
        "machine": "test",
        "rule": "last epoch",
        "seeds": [0, 1],
        "epochs": 2,
        "train_size": 100,
        "subset_seed": 1,
        "teachers": {"mnist": {"test_errors": 400}},
        "summary": summary,
    }
    text = render_report(report)
    assert "| MLP 784-30-30-10 (tiny) | NetAug | 8.50 ± 0.71 |" in text
    assert "training / test errors: MNIST 2.00% / 5.50%" in text
