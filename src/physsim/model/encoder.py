"""The video encoder: tubelet embedding, space + time position embeddings, a pre-norm ViT.

A tubelet is `tubelet` frames x `patch` x `patch` pixels, embedded by one
linear map (a 3-D convolution with stride = kernel). Position embeddings are
learned and factorised: one per spatial cell, added to one per time step, so
a pretrained image ViT's 2-D table loads onto the spatial part and time starts
at zero (`physsim.model.pretrained`). Blocks, norms and GELU follow SigLIP's.

Frames past a clip's end are padding: `frame_mask` marks the real ones and
tokens made only of padding are masked out of every attention.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange, reduce, repeat
from flax import nnx

from physsim.model import layers
from physsim.model.config import ModelConfig


def normalise_pixels(video: jax.Array, dtype) -> jax.Array:
    """uint8 [0, 255] -> [-1, 1], SigLIP's input range."""
    return (video.astype(jnp.float32) / 127.5 - 1.0).astype(dtype)


class VideoEncoder(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        t, h, w = cfg.grid
        d = cfg.enc_width
        self.embed = layers.dense(cfg.tubelet * cfg.patch * cfg.patch * 3, d, (None, "embed"), cfg, rngs)
        position_init = layers.partitioned(nnx.initializers.normal(0.02), (None, "embed"))
        self.pos_space = nnx.Param(position_init(rngs.params(), (h * w, d), cfg.params_dtype))
        self.pos_time = nnx.Param(position_init(rngs.params(), (t, d), cfg.params_dtype))
        self.blocks = layers.Stack(cfg.enc_depth, d, cfg.enc_heads, cfg.enc_mlp, cfg, rngs)
        self.norm = layers.layer_norm(d, cfg, rngs)

    def __call__(self, video: jax.Array, frame_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """video (B, F, H, W, 3) uint8, frame_mask (B, F) bool -> tokens (B, Nv, enc_width), valid (B, Nv) bool.

        Tokens are ordered time-major: (t, h, w).
        """
        cfg = self.cfg
        check_video(video, cfg)
        x = normalise_pixels(video, cfg.compute_dtype)
        x = rearrange(x, "b (t pt) (h ph) (w pw) c -> b t h w (pt ph pw c)", pt=cfg.tubelet, ph=cfg.patch, pw=cfg.patch)
        x = self.embed(x)
        _, h, w = cfg.grid
        x = x + rearrange(self.pos_space[...], "(h w) d -> h w d", h=h).astype(x.dtype)
        x = x + self.pos_time[...][:, None, None, :].astype(x.dtype)
        x = rearrange(x, "b t h w d -> b (t h w) d")
        valid = reduce(frame_mask.astype(jnp.int32), "b (t pt) -> b t", "max", pt=cfg.tubelet) > 0
        valid = repeat(valid, "b t -> b (t hw)", hw=h * w)
        x = self.blocks(x, valid[:, None, None, :])
        return self.norm(x), valid


def check_video(video: jax.Array, cfg: ModelConfig) -> None:
    """Static checks (shapes are known while tracing) with messages that say what to change."""
    expected = (cfg.frames, cfg.height, cfg.width, 3)
    if video.ndim != 5 or tuple(video.shape[1:]) != expected:
        raise ValueError(
            f"video of shape {tuple(video.shape)} does not fit the model: expected (batch, {', '.join(map(str, expected))}) "
            f"(frames, height, width, rgb); pad short clips with physsim.model.pad_frames"
        )
    if video.dtype != jnp.uint8:
        raise TypeError(f"video must be uint8 pixels in [0, 255], got {video.dtype}")
