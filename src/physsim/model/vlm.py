"""The vision-language model: video encoder -> projection -> prefix-LM decoder, plus a slot head.

Why an encoder and a separate decoder (as PaliGemma) rather than one stack:
the encoder is a plain ViT whose blocks match SigLIP's, so pretrained image
encoders load onto it unchanged, and the encoder's width and depth can be set
apart from the decoder's. The decoder sees the sequence

    [video tokens (Nv) ; question (Lq) ; <bos> answer[:-1] (La)]

with a prefix-LM mask: the prefix (video and question) attends to itself
fully, answer positions attend to the prefix and causally to earlier answer
positions. Padding (question <pad>s, tokens of padded frames) is masked out as
keys. Positions are rotary (RoPE) over that one sequence. The output
projection is the transposed input embedding (tied).

The slot head has a learned query per object slot plus one for the scene; its
queries cross-attend to the video tokens and predict each slot's position at
the fixed horizons after the clip, and, optionally, its properties (relative
log mass, friction, restitution) and the gravity of the scene.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx, struct

from physsim.model import layers
from physsim.model.config import ModelConfig
from physsim.model.encoder import VideoEncoder

PROPERTIES = ("relative_log_mass", "friction", "restitution")


@struct.dataclass
class Outputs:
    logits: jax.Array  # (B, La, vocab) float32: position t predicts answer token t
    state: jax.Array  # (B, horizons, max_objects, 3) float32 metres
    properties: jax.Array | None  # (B, max_objects, len(PROPERTIES)) float32
    gravity: jax.Array | None  # (B,) float32 m/s², magnitude


class SlotHead(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        d = cfg.dec_width
        query_init = layers.partitioned(nnx.initializers.normal(0.02), (None, "embed"))
        self.queries = nnx.Param(query_init(rngs.params(), (cfg.max_objects + 1, d), cfg.params_dtype))
        self.blocks = nnx.List([layers.CrossBlock(d, cfg.dec_heads, cfg.dec_mlp, cfg, rngs) for _ in range(cfg.head_depth)])
        self.norm = layers.layer_norm(d, cfg, rngs)
        self.state_out = layers.dense(d, cfg.horizons * 3, ("embed", None), cfg, rngs)
        if cfg.property_head:
            self.property_out = layers.dense(d, len(PROPERTIES), ("embed", None), cfg, rngs)
            self.gravity_out = layers.dense(d, 1, ("embed", None), cfg, rngs)

    def __call__(self, tokens: jax.Array, valid: jax.Array):
        """tokens (B, Nv, D), valid (B, Nv) -> state (B, H, N, 3), properties (B, N, P) | None, gravity (B,) | None."""
        cfg = self.cfg
        q = jnp.broadcast_to(self.queries[...].astype(tokens.dtype), (tokens.shape[0], *self.queries.shape))
        for block in self.blocks:
            q = block(q, tokens, mask=valid[:, None, None, :])
        q = self.norm(q)
        slots, scene = q[:, : cfg.max_objects], q[:, cfg.max_objects]
        state = rearrange(self.state_out(slots).astype(jnp.float32), "b n (h c) -> b h n c", c=3)
        if not cfg.property_head:
            return state, None, None
        return state, self.property_out(slots).astype(jnp.float32), self.gravity_out(scene)[:, 0].astype(jnp.float32)


class VLM(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.config = cfg
        d = cfg.dec_width
        self.encoder = VideoEncoder(cfg, rngs)
        self.project = layers.dense(cfg.enc_width, d, (None, "embed"), cfg, rngs)
        self.embed = nnx.Embed(cfg.vocab_size, d, dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype,
                               embedding_init=layers.embedding_init(d), rngs=rngs)
        self.blocks = layers.Stack(cfg.dec_depth, d, cfg.dec_heads, cfg.dec_mlp, cfg, rngs)
        self.final_norm = layers.layer_norm(d, cfg, rngs)
        self.slots = SlotHead(cfg, rngs)

    # ---- pieces (used by __call__ and by the KV-cache decoder) ----
    def encode(self, video: jax.Array, frame_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Video tokens in the decoder's width (B, Nv, dec_width) and their validity (B, Nv)."""
        tokens, valid = self.encoder(video, frame_mask)
        return self.project(tokens), valid

    def embed_tokens(self, ids: jax.Array) -> jax.Array:
        return self.embed(ids) * jnp.asarray(math.sqrt(self.config.dec_width), self.config.compute_dtype)

    def token_logits(self, h: jax.Array) -> jax.Array:
        """(..., dec_width) decoder outputs -> (..., vocab) logits through the tied embedding, computed in float32
        (`Embed.attend` would compute them in the compute dtype, bf16 under mixed precision)."""
        h = self.final_norm(h).astype(jnp.float32)
        return h @ self.embed.embedding[...].astype(jnp.float32).T

    def decoder(self, x: jax.Array, positions: jax.Array, key_valid: jax.Array, *,
                cache: layers.KVCache | None = None, cache_index: jax.Array | int = 0):
        """x (B, S, D) at absolute `positions` (S,); key_valid (B, K) over every key position.

        Without a cache the keys are x itself (K = S). With one, x's keys are
        written at `cache_index` and the keys are the whole cache (K = sequence length).
        Returns (hidden (B, S, D), cache).
        """
        cfg = self.config
        key_positions = jnp.arange(key_valid.shape[1])
        visible = (key_positions[None, :] < cfg.prefix_length) | (key_positions[None, :] <= positions[:, None])
        mask = visible[None, None] & key_valid[:, None, None, :]  # (B, 1, S, K)
        rope = layers.rope_tables(positions, cfg.dec_width // cfg.dec_heads, cfg.rope_base)
        if cache is None:
            return self.blocks(x, mask, rope), None
        return self.blocks.cached(x, mask, rope, cache, cache_index)

    def empty_cache(self, batch: int) -> layers.KVCache:
        """Keys and values (dec_depth, B, sequence_length, heads, head_dim) each, zero."""
        cfg = self.config
        shape = (cfg.dec_depth, batch, cfg.sequence_length, cfg.dec_heads, cfg.dec_width // cfg.dec_heads)
        return jnp.zeros(shape, cfg.compute_dtype), jnp.zeros(shape, cfg.compute_dtype)

    def key_valid(self, video_valid: jax.Array, question: jax.Array, pad_id: int = 0) -> jax.Array:
        """(B, sequence_length) bool: which decoder positions may be attended to."""
        answers = jnp.ones((question.shape[0], self.config.answer_length), bool)
        return jnp.concatenate([video_valid, question != pad_id, answers], axis=1)

    # ---- the training forward pass ----
    def __call__(self, video: jax.Array, frame_mask: jax.Array, question: jax.Array, answer_in: jax.Array,
                 *, pad_id: int = 0) -> Outputs:
        """video (B, F, H, W, 3) uint8, frame_mask (B, F) bool, question (B, Lq) int32,
        answer_in (B, La) int32 = [<bos>, answer[:-1]] (teacher forcing)."""
        cfg = self.config
        check_tokens(question, answer_in, cfg)
        tokens, valid = self.encode(video, frame_mask)
        x = jnp.concatenate([tokens, self.embed_tokens(question), self.embed_tokens(answer_in)], axis=1)
        h, _ = self.decoder(x, jnp.arange(cfg.sequence_length), self.key_valid(valid, question, pad_id))
        logits = self.token_logits(h[:, cfg.prefix_length :])
        state, properties, gravity = self.slots(tokens, valid)
        return Outputs(logits=logits, state=state, properties=properties, gravity=gravity)


def check_tokens(question: jax.Array, answer_in: jax.Array, cfg: ModelConfig) -> None:
    if question.ndim != 2 or question.shape[1] != cfg.question_length:
        raise ValueError(f"question of shape {tuple(question.shape)}: expected (batch, {cfg.question_length})")
    if answer_in.ndim != 2 or answer_in.shape[1] != cfg.answer_length:
        raise ValueError(f"answer tokens of shape {tuple(answer_in.shape)}: expected (batch, {cfg.answer_length})")


def pad_frames(video: jax.Array, frames: int) -> tuple[jax.Array, jax.Array]:
    """(B, F, H, W, 3) -> (B, frames, H, W, 3) zero-padded at the end, and the (B, frames) mask of real frames.

    Families show clips of different lengths (3 to 21 frames at 12.5 fps);
    padding at the end keeps frame k at the same time in every family.
    """
    have = video.shape[1]
    if have > frames:
        raise ValueError(f"a clip of {have} frames is longer than the model's {frames}; "
                         f"raise model.frames (a multiple of model.tubelet) or show fewer frames")
    padded = jnp.pad(video, [(0, 0), (0, frames - have)] + [(0, 0)] * (video.ndim - 2))
    mask = jnp.broadcast_to(jnp.arange(frames) < have, video.shape[:1] + (frames,))
    return padded, mask


def build(cfg: ModelConfig, seed: int = 0) -> VLM:
    return VLM(cfg, rngs=nnx.Rngs(seed))


def abstract(cfg: ModelConfig) -> VLM:
    """The model with ShapeDtypeStructs in place of arrays (no memory, no FLOPs)."""
    return nnx.eval_shape(lambda: VLM(cfg, rngs=nnx.Rngs(0)))


def count_params(cfg: ModelConfig) -> dict[str, int]:
    """Parameters by part (encoder, projection + embedding + decoder, heads) and in total."""
    state = nnx.state(abstract(cfg), nnx.Param)
    parts = {"encoder": 0, "decoder": 0, "heads": 0}
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        top = str(getattr(path[0], "key", path[0]))
        part = {"encoder": "encoder", "slots": "heads"}.get(top, "decoder")
        parts[part] += math.prod(leaf.shape)
    return {**parts, "total": sum(parts.values())}
