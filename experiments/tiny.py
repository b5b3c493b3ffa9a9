"""The CPU default of `make train`: the tiny model on three cheap families, in minutes on 2 cores.

Families: collision and projectile (state and counterfactual questions, and
"which is heavier" from a collision) and compare (heavier / bouncier / more
slippery / larger, each revealed by its experiment), which needs 16 frames.
Each step simulates 10 worlds with their twins and asks 8 questions about
each (80 questions); a blind copy of the model trains beside it on the same
questions with the video zeroed.
"""

from physsim.model import config as model_config
from physsim.train.config import Config, DataConfig, EvalConfig, RunConfig, TrainConfig


def get_config() -> Config:
    return Config(
        model=model_config.get("tiny"),
        data=DataConfig(families=(("collision", 1.0), ("projectile", 1.0), ("compare", 0.5)), worlds_per_shard=10,
                        questions_per_world=8),
        train=TrainConfig(steps=250, learning_rate=3e-3, warmup_steps=20, log_every=10, checkpoint_every=125),
        eval=EvalConfig(every=125, questions=128, questions_per_world=4),
        run=RunConfig(name="tiny"),
    )
