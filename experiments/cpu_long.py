"""A longer CPU run (2 hours or more on 2 cores): the tiny model on five families, every task type.

Measured on 2026-12-07 (seeds 0, 1, 2, after the label fixes and the per-family physics settings): 2 h 10 min,
1 h 53 min and 2 h 9 min on 2 cores, each shared with other jobs for part of it, 0.06-0.08 steps/s, the held-out
suites simulated once (~15 min) and each evaluation then ~20 s; the "45 minutes" it once took predates the shadow
worlds and the balanced draws.

Adds ramp (rolls / slides / stays, speeds) and chain (the only family with
causal questions: did the red ball make the blue one move?) to tiny.py's
three. Chain's clips are 21 frames, so the model takes 22. Stacks of boxes
are left out: on a CPU they simulate at ~1k world-steps/s.
"""

from physsim.model import config as model_config
from physsim.train.config import Config, DataConfig, EvalConfig, RunConfig, TrainConfig


def get_config() -> Config:
    families = (("collision", 1.0), ("projectile", 1.0), ("compare", 0.75), ("ramp", 0.75), ("chain", 0.5))
    return Config(
        model=model_config.get("tiny", frames=22),
        data=DataConfig(families=families, worlds_per_shard=16, questions_per_world=2, replay=960, replay_sample=64),
        train=TrainConfig(steps=400, updates_per_batch=4, learning_rate=3e-3, warmup_steps=60, log_every=10,
                          checkpoint_every=100),
        eval=EvalConfig(every=100, questions=96, questions_per_world=1),
        run=RunConfig(name="cpu_long"),
    )
