"""A GPU node (8 GPUs): the ~158M `base` model (a ViT-B/16 encoder, SigLIP B/16 weights load onto it) at
128x128 on every scene family, in bf16.

    make train CONFIG=experiments/gpu_base.py
To start from SigLIP, load it into the model before training (see README, "Start from a pretrained
SigLIP encoder").
"""

from physsim.model import config as model_config
from physsim.train.config import Config, DataConfig, EvalConfig, RunConfig, TrainConfig


def get_config() -> Config:
    return Config(
        # remat: blocks recomputed in the backward pass, as gpu_small must to fit an H100 (`make aot`).
        model=model_config.get("base", dtype="bfloat16", remat=True),
        # data.families is left at its default: every registered family, weighted equally.
        data=DataConfig(worlds_per_shard=32, questions_per_world=4, shards=8, camera_jitter=0.1),
        train=TrainConfig(steps=50_000, learning_rate=3e-4, warmup_steps=2000, log_every=100, checkpoint_every=2000),
        eval=EvalConfig(every=2000, questions=512),
        run=RunConfig(name="gpu_base"),
    )
