"""Helpers shared by the trainer's tests: a small, fast variant of the tiny config and run-directory readers."""

import json
from pathlib import Path

from physsim.train import config as config_lib

ROOT = Path(__file__).resolve().parents[1]
SMALL = {  # one cheap family, few worlds: the whole step compiles and runs in seconds; a replay ring of
    # two steps' questions and two updates per step, so resuming must bring the ring back too
    "data.families": {"projectile": 1.0}, "data.worlds_per_shard": 2, "data.questions_per_world": 2,
    "data.replay": 8, "data.replay_sample": 4, "train.updates_per_batch": 2,
    "train.steps": 3, "train.log_every": 1, "train.checkpoint_every": 2, "train.warmup_steps": 1,
    "eval.every": 100, "eval.questions": 4, "eval.splits": ("train",), "run.progress": False,
}


def small_config(tmp_path, **overrides):
    return config_lib.replace(config_lib.load(ROOT / "experiments" / "tiny.py"),
                              {**SMALL, "run.out_dir": str(tmp_path), **overrides})


def losses(run_dir: Path) -> dict[int, dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {e["step"]: e for e in lines if e["kind"] == "train"}


def files(directory: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*") if p.is_file())
