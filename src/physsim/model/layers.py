"""Transformer parts shared by the video encoder, the decoder and the slot head.

Every parameter carries logical axis names (`embed`, `mlp`, `heads`, `vocab`,
`norm`, or None) as NNX sharding metadata; `physsim.train` maps them onto mesh
axes with `nnx.logical_axis_rules` (data parallel: all replicated; FSDP:
`embed` -> `fsdp`). Eager sharding is off per parameter so a model can be
built without a mesh (tests, notebooks, `nnx.eval_shape`).

Attention is `jax.nn.dot_product_attention` with boolean masks; in jax 0.10
its default implementation is XLA's everywhere (full score matrices), and
`implementation="cudnn"` is the switch to try on GPUs. The model needs a mesh
with Auto axes (as `physsim.train.mesh` builds): under the Explicit axes that
`jax.make_mesh` defaults to, `nnx.Linear` refuses sharded contractions. The KV cache is
functional: a tuple (keys, values) passed in and returned, so decoding is a
plain `lax.while_loop` over arrays.
"""

from __future__ import annotations

import contextlib
import math

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx

from physsim.model.config import ModelConfig

KVCache = tuple[jax.Array, jax.Array]  # keys, values: (B, L, heads, head_dim) each; (depth, B, ...) for a Stack

# How activations' leading (batch) axis is laid out while a trainer traces the model (`batch_layout`); None: as
# XLA propagates it (a model used without a mesh: tests, notebooks, decoding).
_BATCH_LAYOUT: list[jax.sharding.Sharding | None] = [None]


@contextlib.contextmanager
def batch_layout(sharding: jax.sharding.Sharding | None):
    """Within it, every block's input is pinned to `sharding` (the batch split over the mesh). Without the pin,
    under FSDP XLA's partitioner gathered the whole batch onto every device instead of gathering each layer's
    weights: `python -m physsim.train.aot --part update` measured 222 GiB of temporaries per chip for
    tpu_pod_large (its per-chip share of the batch needs a few)."""
    previous, _BATCH_LAYOUT[0] = _BATCH_LAYOUT[0], sharding
    try:
        yield
    finally:
        _BATCH_LAYOUT[0] = previous


def pinned(x: jax.Array) -> jax.Array:
    """x with its batch axis laid out as `batch_layout` says (unchanged outside one)."""
    return x if _BATCH_LAYOUT[0] is None else jax.lax.with_sharding_constraint(x, _BATCH_LAYOUT[0])


def partitioned(initializer, axes: tuple[str | None, ...]):
    """`initializer` whose parameters carry logical axis names (sharded later, not at creation)."""
    return nnx.with_partitioning(initializer, axes, eager_sharding=False)


def dense(in_features: int, out_features: int, axes: tuple[str | None, str | None], cfg: ModelConfig,
          rngs: nnx.Rngs, *, kernel_init=nnx.initializers.lecun_normal()) -> nnx.Linear:
    return nnx.Linear(
        in_features, out_features, dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype,
        kernel_init=partitioned(kernel_init, axes), bias_init=partitioned(nnx.initializers.zeros_init(), (axes[1],)),
        rngs=rngs,
    )


def layer_norm(width: int, cfg: ModelConfig, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # epsilon 1e-6 as in SigLIP, so pretrained encoders compute what they were trained to.
    return nnx.LayerNorm(
        width, epsilon=1e-6, dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype,
        scale_init=partitioned(nnx.initializers.ones_init(), ("norm",)),
        bias_init=partitioned(nnx.initializers.zeros_init(), ("norm",)), rngs=rngs,
    )


def rope_tables(positions: jax.Array, head_dim: int, base: float) -> tuple[jax.Array, jax.Array]:
    """sin, cos (S, head_dim/2) float32 for integer positions (S,)."""
    inverse_frequency = base ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
    angles = positions.astype(jnp.float32)[:, None] * inverse_frequency[None, :]
    return jnp.sin(angles), jnp.cos(angles)


def apply_rope(x: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
    """Rotates (B, S, heads, head_dim) by the angles of each position (rotate-half layout)."""
    first, second = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    sin, cos = sin[None, :, None, :], cos[None, :, None, :]
    return jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1).astype(x.dtype)


class Attention(nnx.Module):
    """Multi-head attention with q/k/v/out projections (with biases, as SigLIP's)."""

    def __init__(self, width: int, heads: int, cfg: ModelConfig, rngs: nnx.Rngs):
        self.heads = heads
        self.query = dense(width, width, ("embed", "heads"), cfg, rngs)
        self.key = dense(width, width, ("embed", "heads"), cfg, rngs)
        self.value = dense(width, width, ("embed", "heads"), cfg, rngs)
        self.out = dense(width, width, ("heads", "embed"), cfg, rngs)

    def __call__(self, x: jax.Array, context: jax.Array | None = None, *, mask: jax.Array | None,
                 rope: tuple[jax.Array, jax.Array] | None = None, cache: KVCache | None = None,
                 cache_index: jax.Array | int = 0) -> tuple[jax.Array, KVCache | None]:
        """x (B, S, D) attends to `context` (B, T, D) (cross-attention) or to itself.

        mask: bool, broadcastable to (B, heads, S, keys); True = may attend.
        rope: sin, cos (S, head_dim/2) of x's positions (self-attention only).
        cache: with it, x's keys and values are written at `cache_index` and x
        attends over the whole cache (keys = cache length; the mask hides unwritten slots).
        """
        split = lambda y: rearrange(y, "b s (h d) -> b s h d", h=self.heads)  # noqa: E731
        source = x if context is None else context
        q, k, v = split(self.query(x)), split(self.key(source)), split(self.value(source))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k = jax.lax.dynamic_update_slice_in_dim(cache[0], k.astype(cache[0].dtype), cache_index, axis=1)
            v = jax.lax.dynamic_update_slice_in_dim(cache[1], v.astype(cache[1].dtype), cache_index, axis=1)
            cache = (k, v)
        y = jax.nn.dot_product_attention(q, k, v, mask=mask)
        return self.out(rearrange(y, "b s h d -> b s (h d)")), cache


class Mlp(nnx.Module):
    def __init__(self, width: int, hidden: int, cfg: ModelConfig, rngs: nnx.Rngs):
        self.fc1 = dense(width, hidden, ("embed", "mlp"), cfg, rngs)
        self.fc2 = dense(hidden, width, ("mlp", "embed"), cfg, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=True))  # tanh GELU, as SigLIP


class Block(nnx.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, width: int, heads: int, hidden: int, cfg: ModelConfig, rngs: nnx.Rngs):
        self.norm1 = layer_norm(width, cfg, rngs)
        self.attn = Attention(width, heads, cfg, rngs)
        self.norm2 = layer_norm(width, cfg, rngs)
        self.mlp = Mlp(width, hidden, cfg, rngs)

    def __call__(self, x, *, mask, rope=None, cache=None, cache_index=0):
        h, cache = self.attn(self.norm1(x), mask=mask, rope=rope, cache=cache, cache_index=cache_index)
        x = x + h
        return x + self.mlp(self.norm2(x)), cache


class CrossBlock(nnx.Module):
    """Pre-norm block whose queries attend to a separate context (the slot head's)."""

    def __init__(self, width: int, heads: int, hidden: int, cfg: ModelConfig, rngs: nnx.Rngs):
        self.norm_query = layer_norm(width, cfg, rngs)
        self.norm_context = layer_norm(width, cfg, rngs)
        self.attn = Attention(width, heads, cfg, rngs)
        self.norm2 = layer_norm(width, cfg, rngs)
        self.mlp = Mlp(width, hidden, cfg, rngs)

    def __call__(self, x, context, *, mask):
        h, _ = self.attn(self.norm_query(x), self.norm_context(context), mask=mask)
        x = x + h
        return x + self.mlp(self.norm2(x))


class Stack(nnx.Module):
    """`depth` pre-norm blocks whose parameters are stacked along a leading axis (logical name `layers`, never
    sharded) and run with `nnx.scan`, so a tower is traced and compiled as one block, not `depth` (the `large`
    model has 48 blocks, and its blind baseline as many again). `layers` holds one `Block` whose arrays have
    the extra leading axis."""

    def __init__(self, depth: int, width: int, heads: int, hidden: int, cfg: ModelConfig, rngs: nnx.Rngs):
        @nnx.split_rngs(splits=depth)
        @nnx.vmap(axis_size=depth, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def create(rngs: nnx.Rngs) -> Block:
            return Block(width, heads, hidden, cfg, rngs)

        self.depth = depth
        self.remat = cfg.remat
        self.remat_policy = cfg.remat_policy
        self.unroll = cfg.scan_unroll
        self.layers = create(rngs)

    def __call__(self, x: jax.Array, mask: jax.Array, rope=None) -> jax.Array:
        """x (B, S, D) through every block, without a cache; with `cfg.remat` each block is recomputed in the
        backward pass, keeping what `cfg.remat_policy` allows."""

        def forward(x, block):
            return block(pinned(x), mask=mask, rope=rope)[0], None

        if self.remat:
            forward = nnx.remat(forward, policy=getattr(jax.checkpoint_policies, self.remat_policy))
        x, _ = nnx.scan(forward, in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0), unroll=self.unroll)(x, self.layers)
        return x

    def cached(self, x: jax.Array, mask: jax.Array, rope, cache: KVCache, cache_index: jax.Array | int
               ) -> tuple[jax.Array, KVCache]:
        """x through every block, each writing its keys and values into its layer of `cache` (keys, values:
        (depth, B, L, heads, head_dim) each) at `cache_index`."""

        def forward(x, block, layer_cache):
            return block(x, mask=mask, rope=rope, cache=layer_cache, cache_index=cache_index)

        return nnx.scan(forward, in_axes=(nnx.Carry, 0, 0), out_axes=(nnx.Carry, 0), unroll=self.unroll)(
            x, self.layers, cache)


def embedding_init(width: int):
    # std 1/sqrt(width): inputs are scaled by sqrt(width) (unit variance) and the
    # tied output projection then gives logits of unit scale at initialisation.
    return partitioned(nnx.initializers.normal(1.0 / math.sqrt(width)), ("vocab", "embed"))
