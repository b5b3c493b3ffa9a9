"""Fidelity report: physics against closed-form mechanics and MuJoCo C (`physics`), and the labels against
independent checks, balance and askability (`questions`).

    python -m physsim.validate [--json PATH] [--sections physics questions] [--families F ...] [--worlds N]

Exit status 1 when any gated row fails; rows marked "info" are reported only.
The JSON report is written after every section (`complete` is false until the
last), so a crash keeps what was measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import mujoco

from physsim import _names, scenarios
from physsim.validate.physics import (
    CLOSED_FORM,
    Row,
    Settings,
    all_gated_pass,
    closed_form,
    family_settings,
    mjx_vs_mujoco_c,
    print_table,
    reference_cases,
    run_all,
)
from physsim.validate.questions import (
    ASKABILITY_WORLDS,
    BALANCE_CONFIGS,
    BALANCE_LIMIT,
    MIN_GROUP,
    OOD_ASKED_RATIO,
    OOD_MAX_CLASS,
    UNSERVED_LIMIT,
    askability_row,
    balance_passed,
    config_balance,
    mix_passed,
    print_config_balance,
    print_question_tables,
    print_split_askability,
    print_suite_coverage,
    run_balance,
    split_askability,
    suite_coverage,
)


def all_passed(rows, checks, balance, by_config, by_split, coverage) -> bool:
    return (
        all_gated_pass(rows)
        and all(c.passed for c in checks)
        and all(b["kind"] == "number" or b["samples"] == 0 or b["max_excess"] <= BALANCE_LIMIT for b in balance)
        and all(balance_passed(b) and mix_passed(b) for b in by_config)
        and all(r["passed"] for r in by_split)
        and all(r["passed"] for r in coverage)
    )


def write_json(path: Path, rows, checks, balance, by_config, by_split, coverage, complete: bool,
               families: tuple[str, ...] | None = None) -> None:
    """The report so far; `complete` is False until every section asked for has run (and `passed` then only
    speaks for the sections present). `families`: those the questions section was asked for (None: all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "device": str(jax.devices()[0]),
        "versions": {"jax": jax.__version__, "mujoco": mujoco.__version__},
        "complete": complete,
        "families": list(families or scenarios.names()),
        "rows": [r.as_dict() for r in rows],
        "fact_checks": [dict(vars(c), passed=c.passed) for c in checks],
        "answer_balance": balance,
        "answer_balance_by_config": by_config,
        "askability_by_split": by_split,
        "suite_coverage": coverage,
        "passed": all_passed(rows, checks, balance, by_config, by_split, coverage),
    }
    path.write_text(json.dumps(payload, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this path")
    parser.add_argument("--sections", nargs="+", default=["physics", "questions"], choices=["physics", "questions"])
    parser.add_argument("--families", nargs="+", default=None,
                        help="the questions section for these families only (default: every registered one); "
                             "the sections about the shipped configs (balance at their batch sizes, suite "
                             "coverage) are then left out")
    parser.add_argument("--worlds", type=int, default=None,
                        help="worlds per family and split of the questions section (default: 64 for the fact "
                             f"checks, {ASKABILITY_WORLDS} for askability)")
    args = parser.parse_args(argv)
    for name in args.families or ():
        if name not in scenarios.names():
            parser.error(str(_names.unknown("scene family", name, scenarios.names())))
    if args.worlds is not None and args.worlds < 1:
        parser.error(f"--worlds={args.worlds} must be a positive integer")
    families = tuple(args.families) if args.families else None
    rows, checks, balance, by_config, by_split, coverage = [], [], [], [], [], []

    def write(complete: bool) -> None:  # after every section, so that a crash keeps what was measured
        if args.json:
            write_json(args.json, rows, checks, balance, by_config, by_split, coverage, complete, families)

    if "physics" in args.sections:
        rows = run_all()
        print_table(rows)
        write(False)
    if "questions" in args.sections:
        from physsim import selfcheck

        checks, balance = selfcheck.self_check_all(n_worlds=args.worlds or 64, families=families)
        print_question_tables(checks, balance)
        write(False)
        if families is None:
            by_config = config_balance()
            print_config_balance(by_config)
            write(False)
        by_split = split_askability(n_worlds=args.worlds or ASKABILITY_WORLDS, families=families)
        print_split_askability(by_split)
        write(False)
        if families is None:
            coverage = suite_coverage()
            print_suite_coverage(coverage)
    write(True)
    passed = all_passed(rows, checks, balance, by_config, by_split, coverage)
    return 0 if passed else 1


__all__ = ["ASKABILITY_WORLDS", "BALANCE_CONFIGS", "BALANCE_LIMIT", "CLOSED_FORM", "MIN_GROUP", "OOD_ASKED_RATIO",
           "OOD_MAX_CLASS", "UNSERVED_LIMIT", "Row", "all_gated_pass", "all_passed", "askability_row",
           "balance_passed", "closed_form", "config_balance", "family_settings", "main", "mix_passed", "mjx_vs_mujoco_c", "reference_cases",
           "Settings", "run_all", "run_balance", "split_askability", "suite_coverage", "write_json"]
