"""Run under torchrun (or alone) by ``test_top_k_cache.py``: the top-k cache of a tiny causal
LM teacher, each process printing the shards it wrote and saving what it read. Not
collected by pytest (no ``test_`` prefix)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import kdistill.teachers.cache as cache_module
from kdistill.data import Split
from kdistill.models import create_model
from kdistill.teachers import Teacher, teacher_top_k_for_split


def main(cache: Path) -> None:
    torch.manual_seed(2)
    teacher = Teacher(
        [create_model("llama", layers=1, hidden=16, heads=2, vocab_size=30, max_positions=16)]
    )
    ids = torch.randint(1, 30, (600, 8), generator=torch.Generator().manual_seed(0))
    written: list[str] = []
    real_save = cache_module.save_tensors

    def save_and_note(path, *args, **kwargs):
        written.append(Path(path).name)
        return real_save(path, *args, **kwargs)

    cache_module.save_tensors = save_and_note
    log_probs, top_ids = teacher_top_k_for_split(
        teacher, Split(ids, torch.zeros(600, dtype=torch.long)), cache, k=4, batch_size=64
    )
    torch.save(
        {"log_probs": log_probs, "ids": top_ids}, cache / f"rank{os.environ.get('RANK', '0')}.pt"
    )
    line = {"rank": int(os.environ.get("RANK", "0")), "wrote": written}
    # A file per rank: torchrun interleaves the processes' stdout, even within a line.
    (cache / f"rank{line['rank']}.json").write_text(json.dumps(line))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
