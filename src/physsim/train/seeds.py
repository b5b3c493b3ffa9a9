"""Several runs of one config (different `train.seed`s) summarised: per split and task type, the mean and spread
of the held-out accuracies over the runs, each run's 95% interval, and the blind model and baselines beside them.

    python -m physsim.train.seeds runs/tiny_seed0 runs/tiny_seed1 runs/tiny_seed2 [--table T] [--json PATH]

Each run's `eval.json` is scored on its own held-out suites (the suites are drawn from the seed's evaluation
stream), so the spread over seeds covers both training and the worlds evaluated on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from physsim.questions.templates import TASKS

KEYS = ("split", "task")


# What may differ between the runs of one summary: the seed and where the run was written.
PER_RUN = ("train.seed", "run.name", "run.out_dir", "run.progress", "run.tensorboard")


def flat(tree: dict, prefix: str = "") -> dict:
    """A nested config dict as {"section.key": value}."""
    out = {}
    for k, v in tree.items():
        out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def load(run_dirs: list[Path]) -> list[dict]:
    """Each run's eval.json, with a clear error naming a run that has none (not finished, or not a run), and a
    ValueError naming the keys where the runs' configs (their config.json, where every run has one) differ in
    anything but the seed and the run's name and place: a spread over seeds of different configs means nothing."""
    out, configs = [], []
    for d in run_dirs:
        path = Path(d) / "eval.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no final evaluation (is {d} a finished run directory?)")
        out.append(json.loads(path.read_text()))
        config = Path(d) / "config.json"
        configs.append(flat(json.loads(config.read_text())) if config.is_file() else None)
    if len(configs) > 1 and all(c is not None for c in configs):
        keys = sorted(set().union(*configs) - set(PER_RUN))
        differ = [k for k in keys if any(c.get(k) != configs[0].get(k) for c in configs[1:])]
        if differ:
            raise ValueError(f"the runs' configs differ in {', '.join(differ)} (only {', '.join(PER_RUN)} may)")
    return out


def summarise(evals: list[dict], table: str = "by_split_task") -> list[dict]:
    """One row per group present in every run: the runs' accuracies (model, blind), their mean and sample
    standard deviation, each run's interval and distinct worlds, and the mean chance and best constant."""
    keys = ("split", "family", "task") if table == "by_split_family_task" else KEYS
    per_run = [{tuple(r[k] for k in keys): r for r in e[table]} for e in evals]
    order = {"train": 0, "ood": 1} | {task: i for i, task in enumerate(TASKS)}
    common = sorted(set.intersection(*(set(p) for p in per_run)), key=lambda g: tuple(order.get(x, x) for x in g))
    rows = []
    for group in common:
        rs = [p[group] for p in per_run]
        acc = np.asarray([r["accuracy"] for r in rs])
        blind = np.asarray([r.get("blind_accuracy", np.nan) for r in rs])
        rows.append(dict(zip(keys, group)) | {
            "runs": len(rs), "accuracy": acc.tolist(), "mean": float(acc.mean()),
            "std": float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
            "intervals": [(r["ci_low"], r["ci_high"]) for r in rs],
            "questions": [r["questions"] for r in rs], "worlds": [r["worlds"] for r in rs],
            "blind": blind.tolist(), "blind_mean": float(np.nanmean(blind)),
            "blind_std": float(np.nanstd(blind, ddof=1)) if len(rs) > 1 else 0.0,
            "chance": float(np.mean([r["chance"] for r in rs])),
            "best_constant": float(np.mean([r["best_constant"] for r in rs])),
        })
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as the README's table: mean ± sd over seeds (no sd from one run), then each run's accuracy with its
    interval (a family column where the rows are per family)."""
    per_family = bool(rows) and "family" in rows[0]
    family_column = "| family " if per_family else ""
    lines = [f"| split {family_column}| task type | worlds per run | model: mean ± sd | each run (95% interval) "
             "| blind: mean ± sd | chance | best constant |", "|---" * (8 + per_family) + "|"]
    for r in rows:
        split = "in-distribution" if r["split"] == "train" else "out-of-distribution"
        family = f"| `{r['family']}` " if per_family else ""
        runs = ", ".join(f"{a:.0%} ({lo:.0%}-{hi:.0%})" for a, (lo, hi) in zip(r["accuracy"], r["intervals"]))
        worlds = "/".join(str(w) for w in r["worlds"])
        sd, blind_sd = (f" ± {r['std']:.1%}", f" ± {r['blind_std']:.1%}") if r["runs"] > 1 else ("", "")
        lines.append(f"| {split} {family}| {r['task']} | {worlds} | **{r['mean']:.1%}{sd}** | {runs} | "
                     f"{r['blind_mean']:.1%}{blind_sd} | {r['chance']:.1%} | {r['best_constant']:.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.train.seeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (runs/<name>), one per seed")
    parser.add_argument("--table", default="by_split_task", choices=["by_split_task", "by_split_family_task"])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this path")
    args = parser.parse_args(argv)
    try:
        evals = load(args.runs)
    except (FileNotFoundError, ValueError) as e:
        print(f"python -m physsim.train.seeds: error: {e}", file=sys.stderr)
        return 2
    rows = summarise(evals, args.table)
    print(markdown(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": [str(r) for r in args.runs], "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
