"""CLI verbs of the multi-model procedures (born-again, mutual learning)."""

from __future__ import annotations

import argparse


def add_procedure_verbs(verbs: argparse._SubParsersAction) -> None:
    """Register the procedures' verbs on the main parser."""


def run_procedure_verb(args: argparse.Namespace) -> int:
    """Run a procedure verb; returns the exit status (1 for an unknown verb)."""
    return 1
