"""The language benchmark's plan and report: configs filled in per seed and teacher, verdicts
against the student alone paired by seed, tables from the results only."""

from pathlib import Path

from kdistill.studies.language.plan import LanguageBenchSettings, student_config, teacher_config
from kdistill.studies.language.report import _verdicts, summarise, write_report


def _run(accuracy, f1=0.9, seconds=10.0):
    return {"test": {"accuracy": accuracy, "macro_f1": f1, "total": 425}, "seconds": seconds}


def test_student_configs_take_the_seed_epochs_and_benchmark_teacher(tmp_path):
    settings = LanguageBenchSettings(student_epochs=3, train_fraction=0.5)
    config = student_config("minilm", 7, tmp_path / "t.safetensors", settings)
    assert config.seed == 7 and config.train.epochs == 3 and config.data.train_fraction == 0.5
    assert config.distill.teachers[0].checkpoint == str(tmp_path / "t.safetensors")
    assert config.distill.cache_teacher_features
    assert teacher_config(settings).train.epochs == settings.teacher_epochs
    embedding = student_config("embedding", 0, Path("ignored"), settings)
    assert embedding.distill.teachers[0].checkpoint == "pretrained:minilm"


def test_verdicts_pair_each_variant_with_the_student_alone_by_seed_and_count_signs():
    results = {
        "students": {
            "student-alone": {"0": _run(0.90), "1": _run(0.92), "2": _run(0.91)},
            "kd": {"0": _run(0.95), "1": _run(0.96), "2": _run(0.92)},
            "tinybert": {"0": _run(0.905), "1": _run(0.915), "2": _run(0.92)},
            "minilm": {"0": _run(0.80), "1": _run(0.82), "2": _run(0.90)},
        }
    }
    rows = summarise(results)
    assert rows[0]["accuracy"] == [0.90, 0.92, 0.91]
    verdicts = _verdicts(rows)
    # kd: gains 5, 4, 1 points: mean 3.33, sample std 2.08; all three better: p = 1/8.
    assert "+3.33 ± 2.08 points" in verdicts[0]
    assert verdicts[0].endswith("helped (better on all 3 seeds, sign test p = 0.125).")
    assert verdicts[1].endswith("no clear difference (better on 2 of 3 seeds).")
    assert verdicts[2].endswith("hurt (worse on all 3 seeds).")


def test_report_tables_hold_the_measured_figures(tmp_path):
    settings = LanguageBenchSettings(report_dir=tmp_path)
    results = {
        "settings": {**settings.identity(), "seeds": [0, 1]},
        "machine": "x86_64, 1 thread",
        "teacher": {**_run(0.96, 0.959, 1216.0)},
        "students": {"student-alone": {"0": _run(0.9), "1": _run(0.92)}},
        "latency": {
            "teacher": {"parameters": 22_567_301, "median_ms": 41.5},
            "student": {"parameters": 4_321_000, "median_ms": 3.2},
        },
    }
    write_report(results, settings)
    text = (tmp_path / "README.md").read_text()
    assert "| 22,567,301 | 41.5 | 96.00 | 95.90 | 1216 |" in text
    assert "91.00 ± 1.41" in text
    assert (tmp_path / "results.json").is_file()


def _lm_student(perplexities: list[float], kls: list[float], **extra) -> dict:
    return {
        "parameters": 1000,
        "continuations": ["a", "b", "c"],
        "seeds": {
            str(seed): {"test": {"perplexity": p}, "kl_to_teacher": k, "seconds": 60.0}
            for seed, (p, k) in enumerate(zip(perplexities, kls, strict=True))
        },
        **extra,
    }


def test_the_lm_report_says_how_the_gkd_student_trained(tmp_path):
    def latency(ms: float) -> dict:
        return {"ms_per_token": ms, "new_tokens": 16, "runs": 15}

    settings = LanguageBenchSettings(report_dir=tmp_path, part="lm")
    teacher = {
        "parameters": 1000,
        "test": {"perplexity": 12.0},
        "continuations": ["a", "b", "c"],
        "generation": latency(21.5),
    }
    results = {
        "settings": {**settings.identity(), "seeds": [0]},
        "machine": "x86_64, 1 thread",
        "lm": {
            "teacher": teacher,
            "students": {
                "lm-jsd": _lm_student([321.0], [1.5]),  # measured before the generation latency
                "lm-gkd": _lm_student([321.0], [1.25], generation=latency(1.75)),
            },
        },
    }
    write_report(results, settings)
    text = (tmp_path / "README.md").read_text()
    assert (
        "| GKD: JSD(0.5), half the batches on-policy | 1,000 | 321.0 | 1.250 | 1.75 | 60 |" in text
    )
    assert "| JSD(0.5) | 1,000 | 321.0 | 1.500 | - | 60 |" in text
    assert "| Teacher (SmolLM2-135M) | 1,000 | 12.00 | 0 | 21.50 | - |" in text
    assert "continued by 16 tokens; the median over 15 timed runs" in text
    assert "on the others (a share of 0.5, drawn from the seed and step)" in text
    assert "## What each loss did here" not in text  # no student alone to compare with
    assert (
        f"Command: `OMP_NUM_THREADS=1 kdistill bench language --part lm --output-dir {tmp_path}`"
        in text
    )
    del results["lm"]["students"]["lm-gkd"]
    write_report(results, settings)
    assert "GKD" not in (tmp_path / "README.md").read_text()


def test_the_lm_report_compares_each_loss_with_the_student_alone_by_seed(tmp_path):
    settings = LanguageBenchSettings(report_dir=tmp_path, part="lm", lm_seeds=(0, 1, 3))
    results = {
        "settings": {**settings.identity(), "seeds": [0]},
        "machine": "x86_64, 1 thread",
        "lm": {
            "teacher": {"parameters": 9, "test": {"perplexity": 60.0}, "continuations": "abc"},
            "students": {
                "lm-ce": _lm_student([750.0, 760.0, 770.0], [4.2, 4.3, 4.4]),
                "lm-forward-kl": _lm_student([749.0, 750.0, 780.0], [3.1, 3.3, 3.2]),
                "lm-reverse-kl": _lm_student([2700.0, 2800.0, 2900.0], [4.4, 4.5, 4.6]),
            },
        },
    }
    write_report(results, settings)
    text = (tmp_path / "README.md").read_text()
    assert "--lm-seeds 0 1 3" in text  # the default is 0 1 2
    assert "seeds 0, 1, 3; figures are last-epoch, mean ± std over the seeds" in text
    # mean and sample std of (749, 750, 780) and (3.1, 3.3, 3.2), by hand
    assert "| Forward KL | 1,000 | 759.7 ± 17.6 | 3.200 ± 0.100 | - | 60 |" in text
    assert "## What each loss did here (3 seeds)" in text
    assert "(perplexity 760.0 ± 10.0, KL 4.300 ± 0.100)" in text
    # differences (-1, -10, +10) and (-1.1, -1.0, -1.2)
    assert (
        "- Forward KL: perplexity -0.3 ± 10.0 (lower on 2 of 3 seeds); KL to the teacher "
        "-1.100 ± 0.100 (lower on 3 of 3 seeds)." in text
    )
    assert "lower on 0 of 3 seeds); KL to the teacher +0.200 ± 0.000 (lower on 0 of 3" in text
