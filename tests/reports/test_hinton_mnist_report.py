"""How the report splits the run's time between groups of stages."""

from kdistill.reports.hinton_mnist import time_by_group


def test_time_by_group_counts_every_invocation_and_evaluation():
    stages = {
        # Finished in one invocation: its wall time includes evaluation between epochs.
        "teacher-s0": {"seconds": 720.0, "recorded_seconds": 700.0},
        # Resumed: an earlier invocation had done most epochs, the last one took 10 s.
        "teacher-s1": {"seconds": 10.0, "recorded_seconds": 650.0},
        "student-hard-s0": {"seconds": 40.0, "recorded_seconds": 100.0},
        "student-distilled-s0": {"seconds": 90.0, "recorded_seconds": 85.0},
        "missing-3": {"seconds": 5.0, "recorded_seconds": 5.0},
        "only-7-8": {"seconds": 3.0, "recorded_seconds": 2.0},
        # Results written by an older runner carry no recorded_seconds.
        "cnn-teacher": {"seconds": 20.0},
        "beyond-cnn-teacher-jitter": {"seconds": 30.0, "recorded_seconds": 31.0},
        "something-new": {"seconds": 2.0, "recorded_seconds": 2.0},
    }
    assert time_by_group(stages) == {
        "1200-1200 teachers": 1370.0,
        "2x800 students, hard and distilled": 190.0,
        "missing classes": 8.0,
        "beyond: CNN teacher and its student": 51.0,
        "other": 2.0,
    }
