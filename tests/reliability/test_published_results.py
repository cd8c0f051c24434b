"""A user's run never writes into the repository's published results (docs/results/)."""

from pathlib import Path

from kdistill.cli.main import build_parser
from kdistill.studies.methods.settings import BenchSettings
from kdistill.studies.self_online import SelfOnlineSettings


def test_bench_reports_default_to_runs_not_docs_results():
    parser = build_parser()
    methods = parser.parse_args(["bench", "methods"])
    self_online = parser.parse_args(["bench", "self-online"])
    for default in (methods.output, self_online.output_dir):
        assert Path(default).parts[0] == "runs", default
    assert BenchSettings().output.parts[0] == "runs"
    assert SelfOnlineSettings().output_dir.parts[0] == "runs"
    # The committed report says which folder it was written to.
    assert (
        "--output docs/results/methods"
        in BenchSettings(output=Path("docs/results/methods")).command_line()
    )
