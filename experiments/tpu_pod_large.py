"""A TPU pod slice of 64 chips (e.g. v5e-64, 16 GB each): the ~620M `large` model, FSDP over 8 chips.

Launch the same command on every host (JAX finds its peers on TPU pods):
    PHYSSIM_DISTRIBUTED=1 python -m physsim.train --config experiments/tpu_pod_large.py
Parameters and optimiser state are split over the mesh's 'fsdp' axis (8 chips
share one copy); the 256 scene shards split over every chip, so the device
count must divide 256. Simulation and rendering run on the TPU (MJX's JAX
implementation and physsim's JAX ray caster).

Sized to fit a 16 GB chip (`make aot`, XLA's estimate on a CPU mesh of the
pod's fsdp axis and per-chip work): 24 questions per chip per step need
~12 GB (the model's activations, recomputed per block, dominate). With 16
worlds per shard and 4 questions per world (288 per chip) it needed 124 GB.
"""

from physsim.model import config as model_config
from physsim.train.config import Config, DataConfig, EvalConfig, RunConfig, TrainConfig


def get_config() -> Config:
    return Config(
        model=model_config.get("large"),
        # data.families is left at its default: every registered family, weighted equally.
        data=DataConfig(worlds_per_shard=8, questions_per_world=1, shards=256, camera_jitter=0.1),
        train=TrainConfig(steps=100_000, learning_rate=2e-4, warmup_steps=5000, fsdp=8, log_every=100,
                          checkpoint_every=2000),
        eval=EvalConfig(every=5000, questions=1024),
        run=RunConfig(name="tpu_pod_large"),
    )
