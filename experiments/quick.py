"""tiny.py made as small as a training step can be: what `python -m physsim.bench --quick` times and what the tests
train (tests/helpers.py), so that both compile one step program and it compiles and runs in seconds.

One cheap family (projectile: one ball in flight, nothing to collide with), two scene shards of two worlds, a
replay ring of two steps' questions and two updates per step, on a 16-step schedule (the step count is compiled
into the learning-rate schedule).

    make train CONFIG=experiments/quick.py
"""

from pathlib import Path

from physsim.train import config as config_lib


def get_config() -> config_lib.Config:
    return config_lib.replace(config_lib.load(Path(__file__).with_name("tiny.py")), {
        "data.families": (("projectile", 1.0),), "data.worlds_per_shard": 2, "data.questions_per_world": 2,
        "data.shards": 2, "data.replay": 8, "data.replay_sample": 4, "train.updates_per_batch": 2,
        "train.steps": 16, "train.warmup_steps": 1, "run.name": "quick",
    })
