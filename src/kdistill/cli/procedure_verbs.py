"""CLI verbs of the multi-model procedures (born-again, mutual learning).

Thin like every verb: parse, load the config, call :func:`~kdistill.methods.run_born_again`
or :func:`~kdistill.methods.run_mutual`, print one JSON line of test errors.
"""

from __future__ import annotations

import argparse
import json

from kdistill.cli.arguments import add_run_arguments, run_overrides
from kdistill.engine import is_main_process

VERBS = ("born-again", "mutual")


def add_procedure_verbs(verbs: argparse._SubParsersAction) -> None:
    """Register the procedures' verbs on the main parser."""
    born_again = verbs.add_parser(
        "born-again",
        help="train born-again generations: each learns from the previous one (BAN)",
        description="Born-Again Networks (Furlanello et al., ICML 2018): generation 0 is trained "
        "on the labels; each next generation has the same architecture and is trained from scratch "
        "on the labels plus the previous generation's soft targets (config section born_again: "
        "generations, temperature, soft_target_weight, hard_target_weight). Each generation is "
        "saved in OUTPUT_DIR/gen-<k>/model.safetensors; the ensembles of generations 1..k are "
        "evaluated too. --resume continues at the generation a killed run was in.",
    )
    add_run_arguments(born_again)
    born_again.add_argument(
        "--generations",
        type=int,
        metavar="K",
        help="number of born-again students after generation 0 (default: born_again.generations, 3)",
    )

    mutual = verbs.add_parser(
        "mutual",
        help="train a cohort that learns mutually (deep mutual learning)",
        description="Deep Mutual Learning (Zhang et al., CVPR 2018): the models in mutual.members "
        "train together from scratch; each minimises its cross-entropy plus the KL divergence to "
        "the other members' predictions (mutual.kl_weight, mutual.temperature). Members are saved "
        "as OUTPUT_DIR/cohort/member<k>.safetensors; each is also trained alone for comparison "
        "unless --no-baselines.",
    )
    add_run_arguments(mutual)
    mutual.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip training each member alone (the independent-training comparison)",
    )


def run_procedure_verb(args: argparse.Namespace) -> int:
    """Run a procedure verb; returns the exit status (1 for an unknown verb)."""
    if args.verb not in VERBS:
        return 1
    from kdistill.config import BornAgainRunConfig, MutualRunConfig, load_config

    schema = BornAgainRunConfig if args.verb == "born-again" else MutualRunConfig
    config = load_config(args.config, run_overrides(args), schema=schema)
    if args.verb == "born-again":
        from kdistill.methods import run_born_again

        assert isinstance(config, BornAgainRunConfig)  # validated as ``schema``
        result = run_born_again(config, args.generations, args.resume, overwrite=args.overwrite)
        if not is_main_process():
            return 0  # under torchrun, rank 0 reports for every process
        errors = {f"gen-{g.generation}": g.errors("test") for g in result.generations}
        ensembles = {
            f"gens-1..{k}": count for k, count in enumerate(result.ensemble_test_errors(), 1)
        }
        print(
            json.dumps(
                {
                    "output_dir": str(result.output_dir),
                    "test_errors": errors,
                    "ensemble_test_errors": ensembles,
                }
            )
        )
        return 0
    from kdistill.methods import run_mutual

    assert isinstance(config, MutualRunConfig)  # validated as ``schema``
    outcome = run_mutual(
        config,
        resume=args.resume,
        overwrite=args.overwrite,
        with_baselines=not args.no_baselines,
    )
    if not is_main_process():
        return 0
    line = {
        "output_dir": str(outcome.output_dir),
        "test_errors": {f"member{k}": n for k, n in enumerate(outcome.test_errors())},
        "cohort_ensemble_test_errors": int(outcome.cohort["test"]["errors"]),
    }
    alone = outcome.baseline_test_errors()
    if alone is not None:
        line["alone_test_errors"] = {f"member{k}": n for k, n in enumerate(alone)}
    print(json.dumps(line))
    return 0
