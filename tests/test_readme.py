"""The README's commands and CI stay in step."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [line for line in text.splitlines() if line.startswith("python3 -m venv .venv")]


def test_readme_opens_with_main_job_and_test_commands():
    main_job, tests = _commands()[:2]
    assert main_job.endswith("kdistill reproduce hinton-mnist --profile quick")
    assert "-c constraints.txt" in main_job and "-c constraints.txt" in tests
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    assert _commands()[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_constraints_pin_cpu_torch_but_package_range_is_wide():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
    assert '"torch>=2.1"' in (ROOT / "pyproject.toml").read_text()


def test_config_files_named_in_readme_and_help_exist():
    import re

    from kdistill.cli.main import EPILOG

    text = (ROOT / "README.md").read_text() + EPILOG
    named = set(re.findall(r"configs/[\w./-]+\.yaml", text))
    assert named
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing, missing
