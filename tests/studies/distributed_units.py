"""Run under torchrun (or alone) by ``test_distributed_studies.py``: a study's units as the
reproductions chain them (a stage, specialists from its model, the report written once), so
the two runs can be compared. Not collected by pytest (no ``test_`` prefix)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from kdistill.config import TrainRunConfig, parse_config
from kdistill.data import load_dataset
from kdistill.errors import KDistillError
from kdistill.methods.specialists.training import SpecialistJob, train_specialists
from kdistill.studies.stages import run_stage, write_report_once


def _write(summary: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "writers.txt", "a") as handle:  # who wrote: must be rank 0 alone
        handle.write(os.environ.get("RANK", "0") + "\n")
    report = folder / "README.md"
    report.write_text(json.dumps(summary))
    return report


def main(npz: str, out: Path) -> None:
    config = parse_config(
        {
            "output_dir": str(out / "unused"),
            "data": {"name": f"npz:{npz}", "validation_size": 100},
            "model": {"name": "mlp", "kwargs": {"hidden_sizes": [32]}},
            "train": {
                "epochs": 2,
                "batch_size": 100,
                "progress": False,
                "threads": 1,
                "optimizer": {"name": "sgd", "lr": 0.1},
            },
        },
        schema=TrainRunConfig,
    )
    dataset = load_dataset(f"npz:{npz}")
    stage = run_stage("generalist", config, out, dataset)
    jobs = [
        SpecialistJob(
            index=index,
            classes=classes,
            generalist=str(stage.model_path()),
            config=config.model_copy(update={"output_dir": str(out / f"specialist-{index}")}),
        )
        for index, classes in enumerate([[1, 7], [3, 5, 8]])
    ]
    results, _ = train_specialists(jobs, workers=1)
    report = write_report_once(_write, {"specialists": results}, out / "report")
    refused = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        try:
            train_specialists(jobs, workers=2)
        except KDistillError as error:
            refused = str(error)
    line = {"rank": int(os.environ.get("RANK", "0")), "report": report.exists(), "refused": refused}
    # A file per rank: torchrun interleaves the processes' stdout, even within a line.
    (out / f"result-rank{line['rank']}.json").write_text(json.dumps(line))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
