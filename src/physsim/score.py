"""Score any model's free-text answers: `python -m physsim.score --predictions preds.jsonl --dataset DIR`.

`DIR` is a JSONL export (`python -m physsim.export`); `preds.jsonl` has one
line per question, `{"id": ..., "prediction": "free text"}` (the keys
`response`, `output` or `answer` are read when `prediction` is absent).
Answers are judged by `physsim.questions.answers.check_answer`, the scorer
our own model's evaluation uses: yes/no in words ("Yes.", "I think no"),
objects by their distinguishing words ("the red ball"), numbers with units
converted ("1200 mm" for metres) and held to the question's tolerance. A
question with no prediction counts as wrong. Prints accuracy per family, per
task type and per family x task, and writes them as JSON with `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from physsim import scenarios
from physsim.questions.answers import check_answer
from physsim.questions.templates import Template

PREDICTION_KEYS = ("prediction", "response", "output", "answer")


class ScoreError(ValueError):
    """Predictions or dataset that cannot be scored; the message names the problem."""


def read_jsonl(path: Path, what: str) -> list[dict]:
    if not path.is_file():
        raise ScoreError(f"{what} file {path} does not exist")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ScoreError(f"{path}:{n}: not a JSON line ({err.msg})") from err
    return rows


def template_of(family: str, name: str) -> Template:
    for t in scenarios.get(family).questions:
        if t.name == name:
            return t
    raise ScoreError(f"family {family!r} has no question template {name!r} (a dataset of another physsim version?)")


def predictions_by_id(rows: list[dict], path: Path) -> dict[str, str]:
    out = {}
    for n, row in enumerate(rows, 1):
        if "id" not in row:
            raise ScoreError(f"{path}: prediction {n} has no 'id'")
        text = next((row[k] for k in PREDICTION_KEYS if k in row), None)
        if not isinstance(text, str):
            raise ScoreError(f"{path}: prediction {row['id']!r} has no text under any of {PREDICTION_KEYS}")
        if row["id"] in out:
            raise ScoreError(f"{path}: id {row['id']!r} is predicted twice")
        out[row["id"]] = text
    return out


def score(dataset: list[dict], predictions: dict[str, str]) -> tuple[list[dict], dict]:
    """Per-question rows (id, family, task, correct, answered) and the summary tables."""
    ids = {r["id"] for r in dataset}
    unknown = sorted(set(predictions) - ids)
    if predictions and len(unknown) == len(predictions):
        raise ScoreError(f"no prediction id matches the dataset's ids (e.g. {unknown[0]!r} vs "
                         f"{next(iter(sorted(ids)), None)!r})")
    rows = []
    for r in dataset:
        pred = predictions.get(r["id"])
        t = template_of(r["family"], r["template"])
        rows.append({"id": r["id"], "family": r["family"], "task": r["task"], "template": r["template"],
                     "answered": pred is not None, "correct": pred is not None and check_answer(pred, t, r["value"])})
    return rows, summarise(rows, unknown)


def _acc(rows: list[dict]) -> dict:
    n = len(rows)
    return {"accuracy": sum(r["correct"] for r in rows) / n if n else None, "n": n,
            "answered": sum(r["answered"] for r in rows)}


def summarise(rows: list[dict], unknown: list[str]) -> dict:
    groups: dict[str, dict] = {"per_family": defaultdict(list), "per_task": defaultdict(list),
                               "per_family_task": defaultdict(list)}
    for r in rows:
        groups["per_family"][r["family"]].append(r)
        groups["per_task"][r["task"]].append(r)
        groups["per_family_task"][f"{r['family']}/{r['task']}"].append(r)
    out = {"overall": _acc(rows), "unknown_prediction_ids": len(unknown)}
    for name, g in groups.items():
        out[name] = {k: _acc(v) for k, v in sorted(g.items())}
    return out


def print_tables(summary: dict, console: Console) -> None:
    for name, title in (("per_family", "family"), ("per_task", "task type"), ("per_family_task", "family / task")):
        table = Table(title=f"accuracy per {title}")
        table.add_column(title)
        table.add_column("accuracy", justify="right")
        table.add_column("questions", justify="right")
        table.add_column("answered", justify="right")
        for key, s in summary[name].items():
            table.add_row(key, f"{s['accuracy']:.1%}", str(s["n"]), str(s["answered"]))
        console.print(table)
    o = summary["overall"]
    console.print(f"overall {o['accuracy']:.1%} of {o['n']} questions ({o['answered']} answered; "
                  f"{summary['unknown_prediction_ids']} predictions with ids not in the dataset)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=Path, required=True, help="JSONL: {'id', 'prediction'} per line")
    parser.add_argument("--dataset", type=Path, required=True, help="a JSONL export directory (holds data.jsonl)")
    parser.add_argument("--json", type=Path, default=None, help="write the summary (and per-question rows) here")
    args = parser.parse_args(argv)
    try:
        dataset = read_jsonl(args.dataset / "data.jsonl", "dataset")
        if not dataset:
            raise ScoreError(f"{args.dataset / 'data.jsonl'} holds no questions")
        predictions = predictions_by_id(read_jsonl(args.predictions, "predictions"), args.predictions)
        rows, summary = score(dataset, predictions)
    except ScoreError as err:
        print(f"physsim.score: {err}", file=sys.stderr)
        return 2
    print_tables(summary, Console())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**summary, "questions": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
