"""The reports' command lines: an option appears only where it differs from the settings'
own default, in the order given."""

from dataclasses import dataclass, field
from pathlib import Path

from kdistill.studies.command import bench_command_line


@dataclass
class _Settings:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    embedding: bool = True
    lr: float | None = None
    work_dir: Path = Path("runs/x")


FLAGS = {"seeds": "seeds", "embedding": "no-embedding", "lr": "lr", "work_dir": "work-dir"}


def test_defaults_give_the_bare_program():
    assert bench_command_line("kdistill bench x", _Settings(), FLAGS) == "kdistill bench x"


def test_each_changed_field_prints_its_flag_in_the_given_order():
    settings = _Settings(seeds=[4], embedding=False, lr=0.01, work_dir=Path("/w"))
    assert (
        bench_command_line("p", settings, FLAGS)
        == "p --seeds 4 --no-embedding --lr 0.01 --work-dir /w"
    )
    assert bench_command_line("p", _Settings(seeds=[3, 5]), {"seeds": "s"}) == "p --s 3 5"
