"""How the report splits the run's time between groups of stages."""

from kdistill.reports.hinton_mnist import time_by_group


def test_time_by_group_sums_epoch_records_per_group():
    stages = {
        "teacher-s0": {"seconds": 10.0, "train_seconds": 700.0},
        "teacher-s1": {"seconds": 600.0, "train_seconds": 650.0},
        # A stage resumed in a second invocation: its last invocation took 40 s of 100.
        "student-hard-s0": {"seconds": 40.0, "train_seconds": 100.0},
        "student-distilled-s0": {"seconds": 90.0, "train_seconds": 90.0},
        "missing-3": {"seconds": 5.0, "train_seconds": 5.0},
        "only-7-8": {"seconds": 3.0, "train_seconds": 3.0},
        # Results written by an older runner carry no train_seconds.
        "cnn-teacher": {"seconds": 20.0},
        "beyond-cnn-teacher-jitter": {"seconds": 30.0, "train_seconds": 31.0},
        "something-new": {"seconds": 2.0, "train_seconds": 2.0},
    }
    assert time_by_group(stages) == {
        "1200-1200 teachers": 1350.0,
        "2x800 students, hard and distilled": 190.0,
        "missing classes": 8.0,
        "beyond: CNN teacher and its student": 51.0,
        "other": 2.0,
    }
