"""Helpers shared by the tests: the size of the shared label batch, a small, fast variant of the tiny config and
run-directory readers."""

import json
from pathlib import Path

from physsim.train import config as config_lib

ROOT = Path(__file__).resolve().parents[1]


def measured_worlds(family: str) -> int:
    """Worlds in the batch the label tests share (test_questions' `measured`: the audit's first training
    worlds of the family) and in each fuzzed batch (test_reliability, which reuses its compiled program).
    `make audit` checks 512 per family and split; here simulating the batch with its twins and shadows is
    most of the suite's time. 32 worlds ask every template of at least 3 and draw every answer class, except
    ramp's "does it slide" and stack's "lowest to fall", whose rarer answers need 48 (in 32: no world that
    does not slide; one configuration without its third answer)."""
    return 48 if family in ("ramp", "stack") else 32


# Runs of experiments/quick.py, the quick bench's training config (one cheap family, two scene shards of two worlds,
# a replay ring of two steps' questions and two updates per step, 16 steps), so that the quick bench's test and the
# runs compile one step program: the whole step compiles and runs in seconds. Resuming must
# bring the replay ring back too. 16 steps: room for the kill and signal test (test_reliability) to stop a run twice
# before its end. Two scene shards: the two-process test (test_reliability) trains the first steps of this run on
# two processes, a shard each, and compares them with the uninterrupted run.
SMALL = {"train.log_every": 1, "train.checkpoint_every": 2,
         "eval.every": 100, "eval.questions": 4, "eval.splits": ("train",), "run.progress": False}


def small_config(tmp_path, **overrides):
    return config_lib.replace(config_lib.load(ROOT / "experiments" / "quick.py"),
                              {**SMALL, "run.out_dir": str(tmp_path), **overrides})


def losses(run_dir: Path) -> dict[int, dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {e["step"]: e for e in lines if e["kind"] == "train"}


def files(directory: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*") if p.is_file())
