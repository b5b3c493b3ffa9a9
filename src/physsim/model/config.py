"""Model configuration: one frozen dataclass, named sizes, and checks that name the problem.

Sizes follow the usual ViT widths so that a pretrained SigLIP encoder of the
same width loads onto ours (`physsim.model.pretrained`): `base` has a ViT-B
encoder, `large` a ViT-L one. `python -m physsim.model --sizes` prints the
parameter count of each.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from physsim import _names

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# jax.checkpoint_policies that need no arguments, for model.remat_policy.
REMAT_POLICIES = ("nothing_saveable", "dots_saveable", "dots_with_no_batch_dims_saveable", "everything_saveable")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the model's parameters and its compiled shapes."""

    size: str = "tiny"  # a name for reports; the numbers below are what count
    # Input video (B, frames, height, width, 3) uint8, padded with a frame mask when shorter.
    frames: int = 16
    height: int = 64
    width: int = 64
    patch: int = 16
    tubelet: int = 2  # frames per video token
    # Video encoder: a pre-norm ViT (SigLIP-compatible blocks).
    enc_width: int = 64
    enc_depth: int = 2
    enc_heads: int = 4
    enc_mlp: int = 256
    # Prefix-LM decoder over [video tokens; question; answer].
    dec_width: int = 64
    dec_depth: int = 2
    dec_heads: int = 4
    dec_mlp: int = 256
    vocab_size: int = 256  # >= the tokenizer's size; checked where both meet
    question_length: int = 56  # physsim.questions.templates.QUESTION_LENGTH: the context and the question
    answer_length: int = 12
    # Slot head: learned queries per object slot (+ one for the scene) reading the video tokens.
    max_objects: int = 5
    horizons: int = 3
    head_depth: int = 1
    property_head: bool = True
    # Numerics.
    dtype: str = "float32"  # compute dtype; "bfloat16" for mixed precision
    param_dtype: str = "float32"
    remat: bool = False  # recompute block activations in the backward pass
    # What a rematerialised block keeps for the backward pass: a policy of jax.checkpoint_policies (the
    # default keeps nothing; "dots_saveable" keeps matmul outputs: more memory, less recomputation).
    remat_policy: str = "nothing_saveable"
    # Blocks per iteration of a tower's scan (layers.Stack): 1 traces and compiles one block per tower; the
    # tower's depth unrolls it completely (XLA then sees, and counts, every block).
    scan_unroll: int = 1
    rope_base: float = 10_000.0

    def __post_init__(self):
        positive = ("frames", "height", "width", "patch", "tubelet", "enc_width", "enc_depth", "enc_heads",
                    "enc_mlp", "dec_width", "dec_depth", "dec_heads", "dec_mlp", "vocab_size",
                    "question_length", "answer_length", "max_objects", "horizons", "head_depth", "scan_unroll")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"model.{name}={value!r} must be a positive integer")
        for name in ("height", "width"):
            if getattr(self, name) % self.patch:
                raise ValueError(f"model.{name}={getattr(self, name)} is not a multiple of model.patch={self.patch}")
        if self.frames % self.tubelet:
            raise ValueError(f"model.frames={self.frames} is not a multiple of model.tubelet={self.tubelet}")
        for prefix in ("enc", "dec"):
            width, heads = getattr(self, f"{prefix}_width"), getattr(self, f"{prefix}_heads")
            if width % heads:
                raise ValueError(f"model.{prefix}_width={width} is not divisible by model.{prefix}_heads={heads}")
        if (self.dec_width // self.dec_heads) % 2:
            raise ValueError(f"decoder head width {self.dec_width // self.dec_heads} must be even for rotary embeddings")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise _names.unknown(f"model.{name}", getattr(self, name), sorted(DTYPES))
        if self.remat_policy not in REMAT_POLICIES:
            raise _names.unknown("model.remat_policy", self.remat_policy, REMAT_POLICIES)

    # Derived shapes.
    @property
    def grid(self) -> tuple[int, int, int]:
        """Video tokens along (time, height, width)."""
        return self.frames // self.tubelet, self.height // self.patch, self.width // self.patch

    @property
    def video_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def prefix_length(self) -> int:
        """Decoder positions that attend to each other fully: video tokens and the question."""
        return self.video_tokens + self.question_length

    @property
    def sequence_length(self) -> int:
        return self.prefix_length + self.answer_length

    @property
    def compute_dtype(self):
        return DTYPES[self.dtype]

    @property
    def params_dtype(self):
        return DTYPES[self.param_dtype]

    def replace(self, **changes: Any) -> ModelConfig:
        unknown = [k for k in changes if k not in FIELDS]
        if unknown:
            raise unknown_field_error(unknown[0])
        return dataclasses.replace(self, **changes)


FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))


def unknown_field_error(name: str) -> ValueError:
    return _names.unknown("model config key", name, FIELDS)


# Widths of the standard ViT sizes; decoders sized so that the totals land near
# the advertised counts (printed exactly by `python -m physsim.model --sizes`).
SIZES: dict[str, dict[str, Any]] = {
    # Trains on 2 CPU cores in minutes: 16x16 patches (64 video tokens per 2 frames). On a fixed
    # pool of collision/projectile/compare questions it learned as well as 8x8 patches per step
    # seen, at a sixth of the cost (docs/DESIGN.md).
    "tiny": dict(),
    # ~30M: a ViT-S/8 encoder and a 6-layer decoder; 22 frames hold every family's clip.
    "small": dict(frames=22, patch=8, enc_width=384, enc_depth=6, enc_heads=6, enc_mlp=1536,
                  dec_width=512, dec_depth=6, dec_heads=8, dec_mlp=2048),
    # ~150M: a ViT-B/16 encoder (SigLIP B/16 loads onto it) and a 9-layer decoder.
    "base": dict(height=128, width=128, patch=16, frames=22,
                 enc_width=768, enc_depth=12, enc_heads=12, enc_mlp=3072,
                 dec_width=768, dec_depth=9, dec_heads=12, dec_mlp=3072),
    # ~600M: a ViT-L/16 encoder (SigLIP L/16 loads onto it) and a 24-layer decoder.
    "large": dict(height=128, width=128, patch=16, frames=22,
                  enc_width=1024, enc_depth=24, enc_heads=16, enc_mlp=4096,
                  dec_width=1024, dec_depth=24, dec_heads=16, dec_mlp=4096,
                  remat=True, dtype="bfloat16"),
}


def get(size: str = "tiny", **overrides: Any) -> ModelConfig:
    """The named size with `overrides` applied (unknown names and keys are errors that suggest a fix)."""
    if size not in SIZES:
        raise _names.unknown("model size", size, SIZES)
    return ModelConfig(size=size, **SIZES[size]).replace(**overrides)


def to_dict(config: ModelConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(values: dict[str, Any]) -> ModelConfig:
    unknown = [k for k in values if k not in FIELDS]
    if unknown:
        raise unknown_field_error(unknown[0])
    return ModelConfig(**values)
