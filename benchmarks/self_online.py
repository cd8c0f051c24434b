"""Self and online distillation benchmark: independent training vs born-again generations vs
their ensembles vs deep mutual learning, on MNIST MLPs and Fashion-MNIST CNNs.

    OMP_NUM_THREADS=1 python benchmarks/self_online.py                   # the table (~30 min)
    OMP_NUM_THREADS=1 python benchmarks/self_online.py --profile timing  # 1 epoch, 1 seed

Per data set and seed, six stages (A = the suite's main network, B = a different one):

* ``alone-A0``: A trained alone on the labels. It is at once the independent baseline, BAN's
  generation 0 (the teacher T) and the alone baseline of cohort member 0 (member 0 uses the
  run's seed, so all three are the same run; it is trained once).
* ``alone-A1`` / ``alone-B1``: member 1 of the A+A / A+B cohorts trained alone (same
  initialisation and batches as in the cohort).
* ``ban``: born-again generations 1..3 of A from ``alone-A0`` (T = 1, CE + KD weights 1, 1).
* ``dml-same`` / ``dml-mixed``: the A+A and A+B cohorts (Zhang et al. 2018, T = 1, KL weight 1).

Every stage writes ``stage.json`` when done and is skipped on the next run; a killed stage
resumes from its epoch checkpoint, so rerunning the same command after a kill loses little.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from kdistill.config import RunConfig, parse_config
from kdistill.data import DataSet, load_dataset
from kdistill.data.subsets import stratified_indices
from kdistill.engine.checkpoint import load_model
from kdistill.files import atomic_write_text, cache_dir
from kdistill.methods import run_born_again, run_mutual, train_alone
from kdistill.teachers import evaluate_growing_ensembles

ROOT = Path(__file__).resolve().parents[1]
SUBSET_SEED = 1234
"""The training subset is one fixed stratified draw, the same for every seed: the spread over
seeds is then that of initialisation and batch order, not of the data."""

SUITES: dict[str, dict[str, Any]] = {
    "mnist": {
        "title": "MNIST, MLPs",
        "A": {"name": "mlp", "kwargs": {"hidden_sizes": [800, 800]}},
        "B": {"name": "mlp", "kwargs": {"hidden_sizes": [300, 300]}},
        "A_label": "MLP 800-800",
        "B_label": "MLP 300-300",
        "lr": 0.05,
        "epochs": 8,
    },
    "fashion-mnist": {
        "title": "Fashion-MNIST, CNNs",
        "A": {"name": "cnn", "kwargs": {"channels": [16, 32]}},
        "B": {"name": "mlp", "kwargs": {"hidden_sizes": [800, 800]}},
        "A_label": "CNN 16-32",
        "B_label": "MLP 800-800",
        "lr": 0.1,
        "epochs": 6,
    },
}


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def subset(dataset: DataSet, size: int) -> DataSet:
    if size >= len(dataset.train):
        return dataset
    indices = stratified_indices(dataset.train.labels, size, SUBSET_SEED)
    return DataSet(
        name=f"{dataset.name}-{size}",
        train=dataset.train.subset(indices),
        test=dataset.test,
        num_classes=dataset.num_classes,
        fingerprint=f"{dataset.fingerprint}-stratified-{size}-{SUBSET_SEED}",
    )


def base_config(suite: dict[str, Any], data: str, seed: int, epochs: int, out: Path) -> dict:
    return {
        "seed": seed,
        "output_dir": str(out),
        "data": {"name": data},
        "train": {
            "epochs": epochs,
            "batch_size": 100,
            # 200, not the default 2000: a 1-thread CPU evaluates the CNN 2x faster in
            # cache-sized batches, and evaluation runs every epoch.
            "eval_batch_size": 200,
            "optimizer": {"name": "sgd", "lr": suite["lr"], "momentum": 0.9, "nesterov": True},
            "schedule": {"name": "cosine"},
            "progress": False,
            "threads": 1,
        },
    }


def cohort_config(suite, data, seed, epochs, out, second: str) -> RunConfig:
    raw = base_config(suite, data, seed, epochs, out)
    raw["mutual"] = {"members": [suite["A"], suite[second]], "kl_weight": 1.0, "temperature": 1.0}
    return parse_config(raw)


def ban_config(suite, data, seed, epochs, out, teacher: Path) -> RunConfig:
    raw = base_config(suite, data, seed, epochs, out)
    raw["model"] = suite["A"]
    raw["born_again"] = {
        "generations": 3,
        "temperature": 1.0,
        "soft_target_weight": 1.0,
        "hard_target_weight": 1.0,
        "teacher": str(teacher),
    }
    return parse_config(raw)


def stage(folder: Path, name: str, work) -> dict[str, Any]:
    """Run ``work()`` once: its JSON-able result is kept in ``folder/stage.json``."""
    marker = folder / "stage.json"
    if marker.exists():
        return json.loads(marker.read_text())
    started = time.perf_counter()
    result = work()
    result["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_text(marker, json.dumps(result, indent=2) + "\n")
    log(f"{name}: {result['seconds']:.0f} s, test errors {result['errors']}")
    return result


def run_suite(
    data_name: str, dataset: DataSet, seed: int, epochs: int, work: Path
) -> dict[str, Any]:
    suite = SUITES[data_name]
    folder = work / data_name / f"seed-{seed}"
    same = cohort_config(suite, data_name, seed, epochs, folder / "dml-same", "A")
    mixed = cohort_config(suite, data_name, seed, epochs, folder / "dml-mixed", "B")
    tag = f"[{data_name} seed {seed}]"

    def alone(config: RunConfig, index: int, name: str) -> dict[str, Any]:
        def work_() -> dict[str, Any]:
            fit = train_alone(config, index, folder / name, resume=True, dataset=dataset)
            return {"errors": fit.errors("model")}

        return stage(folder / name, f"{tag} {name}", work_)

    results: dict[str, Any] = {
        "alone-A0": alone(same, 0, "alone-A0"),
        "alone-A1": alone(same, 1, "alone-A1"),
        "alone-B1": alone(mixed, 1, "alone-B1"),
    }

    def independent_ensemble() -> dict[str, Any]:
        models = [load_model(folder / n / "model.safetensors")[0] for n in ("alone-A0", "alone-A1")]
        ensembles = evaluate_growing_ensembles(models, {"test": dataset.test}, batch_size=200)
        return {"errors": ensembles[-1]["test"].errors}

    results["ensemble-A0-A1"] = stage(
        folder / "ensemble-A0-A1", f"{tag} ensemble A0+A1", independent_ensemble
    )

    def ban() -> dict[str, Any]:
        config = ban_config(
            suite,
            data_name,
            seed,
            epochs,
            folder / "ban",
            folder / "alone-A0" / "model.safetensors",
        )
        result = run_born_again(config, resume=True, dataset=dataset)
        return {
            "errors": result.test_errors(),
            "ensemble_errors": result.ensemble_test_errors(),
        }

    results["ban"] = stage(folder / "ban", f"{tag} born-again gens 1-3", ban)

    def dml(config: RunConfig) -> dict[str, Any]:
        result = run_mutual(config, resume=True, with_baselines=False, dataset=dataset)
        return {"errors": result.test_errors(), "cohort_errors": result.cohort["test"]["errors"]}

    results["dml-same"] = stage(folder / "dml-same", f"{tag} DML A+A", lambda: dml(same))
    results["dml-mixed"] = stage(folder / "dml-mixed", f"{tag} DML A+B", lambda: dml(mixed))
    return results


# --- Report -----------------------------------------------------------------------------------


def percent(errors: list[int], total: int) -> tuple[float, float]:
    values = [100.0 * e / total for e in errors]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread


def rows_for(data_name: str, per_seed: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    """Table rows: (method, model, errors per seed, baseline errors per seed for the delta)."""
    suite = SUITES[data_name]
    a, b = suite["A_label"], suite["B_label"]

    def col(getter) -> list[int]:
        return [int(getter(r)) for r in per_seed]

    a0 = col(lambda r: r["alone-A0"]["errors"])
    a1 = col(lambda r: r["alone-A1"]["errors"])
    b1 = col(lambda r: r["alone-B1"]["errors"])
    rows = [
        ("Independent (= BAN teacher T, gen 0)", a, a0, None),
        ("Independent, 2nd init (DML A+A member 1 alone)", a, a1, None),
        ("Independent", b, b1, None),
        ("Ensemble of 2 independent", f"2 x {a}", col(lambda r: r["ensemble-A0-A1"]["errors"]), a0),
    ]
    for k in (1, 2, 3):
        rows.append((f"Born-again gen {k}", a, col(lambda r, k=k: r["ban"]["errors"][k]), a0))
    for k in (2, 3):
        rows.append(
            (
                f"BAN ensemble gens 1..{k}",
                f"{k} x {a}",
                col(lambda r, k=k: r["ban"]["ensemble_errors"][k - 1]),
                a0,
            )
        )
    rows += [
        ("DML A+A, member 0", a, col(lambda r: r["dml-same"]["errors"][0]), a0),
        ("DML A+A, member 1", a, col(lambda r: r["dml-same"]["errors"][1]), a1),
        ("DML A+A, cohort ensemble", f"2 x {a}", col(lambda r: r["dml-same"]["cohort_errors"]), a0),
        ("DML A+B, member 0", a, col(lambda r: r["dml-mixed"]["errors"][0]), a0),
        ("DML A+B, member 1", b, col(lambda r: r["dml-mixed"]["errors"][1]), b1),
        (
            "DML A+B, cohort ensemble",
            f"{a} + {b}",
            col(lambda r: r["dml-mixed"]["cohort_errors"]),
            a0,
        ),
    ]
    table = []
    for method, model, errors, baseline in rows:
        mean, std = percent(errors, total)
        row = {"method": method, "model": model, "errors": errors, "mean": mean, "std": std}
        if baseline is not None:
            deltas = [100.0 * (e - b_) / total for e, b_ in zip(errors, baseline, strict=True)]
            row["delta_mean"] = statistics.mean(deltas)
            row["delta_std"] = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
            row["wins"] = sum(e < b_ for e, b_ in zip(errors, baseline, strict=True))
        table.append(row)
    return table


def markdown_table(rows: list[dict[str, Any]], seeds: int) -> str:
    lines = [
        "| Method | Model | Test error % (mean ± std) | Δ vs its independent baseline, pp (paired) | Better in | Test errors per seed |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        delta = f"{row['delta_mean']:+.2f} ± {row['delta_std']:.2f}" if "delta_mean" in row else "—"
        wins = f"{row['wins']}/{seeds}" if "wins" in row else "—"
        lines.append(
            f"| {row['method']} | {row['model']} | {row['mean']:.2f} ± {row['std']:.2f} | "
            f"{delta} | {wins} | {', '.join(map(str, row['errors']))} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores (shared with two other jobs), 1 thread; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"torch {torch.__version__} CPU"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["full", "timing"], default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--datasets", nargs="+", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench-self-online")
    parser.add_argument(
        "--output-dir", type=Path, default=ROOT / "docs" / "results" / "self-online"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    timing = args.profile == "timing"
    seeds = args.seeds[:1] if timing else args.seeds
    work = args.work_dir / ("timing" if timing else "full")
    started = time.perf_counter()
    log(f"profile {args.profile}, seeds {seeds}, train size {args.train_size}, work dir {work}")

    results: dict[str, Any] = {}
    totals: dict[str, int] = {}
    epochs_used: dict[str, int] = {}
    for data_name in args.datasets:
        dataset = subset(load_dataset(data_name, cache_dir=cache_dir()), args.train_size)
        totals[data_name] = len(dataset.test)
        epochs = 1 if timing else SUITES[data_name]["epochs"]
        epochs_used[data_name] = epochs
        results[data_name] = [run_suite(data_name, dataset, s, epochs, work) for s in seeds]
    wall = time.perf_counter() - started
    stage_seconds = sum(
        value["seconds"]
        for per_seed in results.values()
        for stages in per_seed
        for value in stages.values()
    )
    log(f"done in {wall:.0f} s wall ({stage_seconds:.0f} s of stage time incl. earlier runs)")
    if timing:
        for data_name, per_seed in results.items():
            seconds = sum(v["seconds"] for v in per_seed[0].values())
            planned = SUITES[data_name]["epochs"] * seconds * len(args.seeds)
            log(
                f"{data_name}: 1 epoch x 1 seed = {seconds:.0f} s -> planned {planned / 60:.1f} min"
            )
        return 0

    tables = {name: rows_for(name, per_seed, totals[name]) for name, per_seed in results.items()}
    command = "OMP_NUM_THREADS=1 python benchmarks/self_online.py" + (
        "" if argv is None else " " + " ".join(argv)
    )
    report = {
        "command": command,
        "machine": machine(),
        "wall_seconds_this_invocation": round(wall, 1),
        "stage_seconds_total": round(stage_seconds, 1),
        "rule": f"test error after the last epoch, {len(seeds)} seeds (mean, sample std)",
        "seeds": seeds,
        "train_size": args.train_size,
        "subset_seed": SUBSET_SEED,
        "test_size": totals,
        "epochs": epochs_used,
        "suites": {
            name: {k: v for k, v in SUITES[name].items() if k != "epochs"} for name in results
        },
        "per_seed": results,
        "tables": tables,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output_dir / "results.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.output_dir / "TABLES.md", render_tables(report))
    log(f"wrote {args.output_dir / 'results.json'} and TABLES.md")
    return 0


def render_tables(report: dict[str, Any]) -> str:
    parts = []
    for name, rows in report["tables"].items():
        suite = SUITES[name]
        parts.append(
            f"### {suite['title']}: {report['train_size']:,} training images (stratified subset), "
            f"{report['test_size'][name]:,} test images, {report['epochs'][name]} epochs\n\n"
            f"A = {suite['A_label']}, B = {suite['B_label']}; SGD lr {suite['lr']} (Nesterov 0.9), "
            f"cosine, batch 100.\n\n" + markdown_table(rows, len(report["seeds"]))
        )
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.exit(main())
