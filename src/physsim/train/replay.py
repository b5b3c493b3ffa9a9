"""A rolling in-memory replay of recent questions, kept in the train state (optional).

On a CPU, simulating a world costs far more than a training update on its
questions, and updates learn much more from many worlds than from many
questions about a few (measured on a fixed pool, 300 updates of 64 questions:
64 worlds per update reached 87% held-out property accuracy, 8 worlds x 8
questions 60%, the blind model 50%; docs/DESIGN.md). So each step simulates a
few fresh worlds, pushes their questions into a ring of the most recent
`data.replay` questions per scene shard, and draws every update's questions
uniformly from the ring. New scenes enter every step and leave after
`replay / fresh` steps, so no scene is used more than a bounded number of
times (unlike a fixed dataset), and held-out evaluation stays on its own
seeds. Rings are per scene shard and drawn from with per-shard keys, so the
run is the same on any device count; the ring is part of the checkpoint.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from physsim import streams
from physsim.train.data import Batch


def per_shard(batch: Batch, shards: int) -> Batch:
    """(shards * n, ...) -> (shards, n, ...)."""
    return jax.tree.map(lambda x: x.reshape((shards, -1) + x.shape[1:]), batch)


def empty(fresh_like: Batch, shards: int, size: int) -> Batch:
    """A ring of `size` questions per scene shard, shaped like `fresh_like` (one shard's fresh questions)."""
    return jax.tree.map(lambda x: jnp.zeros((shards, size) + x.shape[1:], x.dtype), fresh_like)


def push_and_sample(ring: Batch, fresh: Batch, step: jax.Array, key: jax.Array, updates: int, sample: int
                    ) -> tuple[Batch, Batch]:
    """Writes `fresh` (shards * n questions) into the ring at this step's slot and draws `updates`
    batches of `sample` questions per shard from what the ring holds, with the step key's replay
    stream (`streams.replay`).

    Returns the new ring (shards, size, ...) and the draws (updates, shards * sample, ...).
    """
    shards, size = ring.valid.shape
    fresh = per_shard(fresh, shards)
    n = fresh.valid.shape[1]
    slot = (step * n) % size
    ring = jax.tree.map(lambda r, f: jax.lax.dynamic_update_slice_in_dim(r, f, slot, axis=1), ring, fresh)
    filled = jnp.minimum((step + 1) * n, size)

    def draw(shard_ring, shard):
        index = jax.random.randint(streams.replay(key, shard), (updates, sample), 0, filled)
        return jax.tree.map(lambda x: x[index], shard_ring)  # (updates, sample, ...)

    drawn = jax.vmap(draw)(ring, jnp.arange(shards))  # (shards, updates, sample, ...)
    drawn = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape((updates, shards * sample) + x.shape[3:]), drawn)
    return ring, drawn
