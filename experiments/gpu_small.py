"""One 8-GPU node: the ~33M `small` model on every scene family.

    make train CONFIG=experiments/gpu_small.py
Each of the 8 scene shards simulates 32 worlds, shared by the six families
(5 each after rounding: 30, with their counterfactual twins), and asks 4
questions per world: 960 questions per step, one shard per GPU. On fewer
GPUs pass `--data.shards=N` (N = 1, 2 or 4) so that each GPU keeps one
shard's work: the 8 shards divide 1, 2 or 4 devices too, but all 8 on one
GPU would hold about 8 times the ~16 GB of temporaries that `make aot`
estimates per GPU (scaled, not compiled), more than an H100 has.
"""

from physsim.model import config as model_config
from physsim.train.config import Config, DataConfig, EvalConfig, RunConfig, TrainConfig


def get_config() -> Config:
    return Config(
        # remat: without it the backward pass keeps ~0.8 GB of activations per example (XLA's estimate for this
        # step on its 8-device mesh, `make aot`): 120 questions per GPU needed 169 GB, more than an H100 has.
        model=model_config.get("small", dtype="bfloat16", remat=True),
        # data.families is left at its default: every registered family, weighted equally.
        data=DataConfig(worlds_per_shard=32, questions_per_world=4, shards=8, camera_jitter=0.1),
        train=TrainConfig(steps=20_000, learning_rate=5e-4, warmup_steps=500, log_every=50, checkpoint_every=1000,
                          keep_checkpoints=3),
        eval=EvalConfig(every=1000, questions=256),
        run=RunConfig(name="gpu_small"),
    )
