"""The specialists report puts the paper's Tables 3 and 4 beside the measured figures."""

from kdistill.reports.specialists import write_report


def _results() -> dict:
    groups = [[0, 1], [1, 2]]
    confusion = [[8, 1, 1], [2, 7, 1], [0, 3, 7]]
    stat = {"mean": 0.8, "std": 0.01, "runs": 1, "values": [0.8]}
    specialist = {
        "index": 0,
        "classes": [0, 1],
        "subset_fraction": 0.5,
        "dustbin_shift": 0.0,
        "test": {"accuracy": 0.9},
    }
    return {
        "profile": "smoke",
        "settings": {"generalist_epochs": 1, "specialist_epochs": 1, "distilled_epochs": 1},
        "method": {
            "num_specialists": 2,
            "classes_per_specialist": 2,
            "overlap": True,
            "normalize_columns": True,
            "top_n": 1,
            "dustbin_shift": "paper",
            "inference_steps": 10,
        },
        "workers": 2,
        "machine": {"platform": "test"},
        "data": {"name": "mnist-100", "train": 30, "test": 30},
        "rule": "last epoch",
        "table_3": {
            "generalist_accuracy": stat,
            "generalist_conditional": stat,
            "ensemble_accuracy": {**stat, "mean": 0.79},
            "ensemble_conditional": stat,
            "distilled_accuracy": stat,
        },
        "seeds": {
            "0": {
                "clusters": {
                    "groups": groups,
                    "confusion": confusion,
                    "confusion_inside": [
                        {
                            "classes": g,
                            "errors": 3,
                            "errors_inside": 2,
                            "share_inside": 0.67,
                            "share_if_uniform": 0.5,
                        }
                        for g in groups
                    ],
                },
                "specialists": {"wall_seconds": 3.0, "workers": 2, "specialists": [specialist]},
                "ensemble": {
                    "generalist": {"accuracy": 0.8},
                    "ensemble": {"accuracy": 0.79},
                    "active_per_example": 1.0,
                    "examples_with_active": 20,
                    "changed_predictions": 2,
                    "table_4": [
                        {
                            "specialists": "0",
                            "examples": 10,
                            "generalist_correct": 8,
                            "change": 0,
                            "relative": 0.0,
                        },
                        {
                            "specialists": "1",
                            "examples": 20,
                            "generalist_correct": 16,
                            "change": -1,
                            "relative": -1 / 16,
                        },
                    ],
                },
                "distilled": {"test_accuracy": 0.8},
            }
        },
        "model_cards": {"generalist": {"parameters": 10, "latency_ms": 0.1}},
        "timing": {"specialists": 2, "1": 4.0, "2": 2.5},
        "total_seconds": 60.0,
    }


def test_the_report_sets_both_tables_beside_the_paper_and_says_when_specialists_hurt(tmp_path):
    path = write_report(_results(), tmp_path)
    text = path.read_text()
    assert "| generalist | 25.0% | 43.1% | 80.00 ± 1.00% |" in text
    assert "| 1 | 141,993 | +1,421 | +3.4% | 20 | -1 (-1) | -6.25% |" in text
    assert "Specialists do not help here" in text
    assert "1.60x" in text
    for name in ("results.json", "confusion.png", "table4.png"):
        assert (tmp_path / name).exists()
