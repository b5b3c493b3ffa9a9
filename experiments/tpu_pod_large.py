"""A TPU pod slice (e.g. v5p-128: 64 hosts' chips in one mesh): the ~620M `large` model, FSDP over 8 chips.

Launch the same command on every host (JAX finds its peers on TPU pods):
    PHYSSIM_DISTRIBUTED=1 python -m physsim.train --config experiments/tpu_pod_large.py
Parameters and optimiser state are split over the mesh's 'fsdp' axis (8 chips
share one copy); the 256 scene shards split over every chip, so the device
count must divide 256. Simulation and rendering run on the TPU (MJX's JAX
implementation and physsim's JAX ray caster).
"""

from physsim.model import config as model_config
from physsim.train.config import Config, DataConfig, EvalConfig, RunConfig, TrainConfig


def get_config() -> Config:
    return Config(
        model=model_config.get("large"),
        # data.families is left at its default: every registered family, weighted equally.
        data=DataConfig(worlds_per_shard=16, questions_per_world=4, shards=256, camera_jitter=0.1),
        train=TrainConfig(steps=100_000, learning_rate=2e-4, warmup_steps=5000, fsdp=8, log_every=100,
                          checkpoint_every=2000),
        eval=EvalConfig(every=5000, questions=1024),
        run=RunConfig(name="tpu_pod_large"),
    )
