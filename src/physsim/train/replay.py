"""A rolling in-memory replay of recent questions, kept in the train state (optional).

On a CPU, simulating a world costs far more than a training update on its
questions, and updates learn much more from many worlds than from many
questions about a few (measured on a fixed pool, 300 updates of 64 questions:
64 worlds per update reached 87% held-out property accuracy, 8 worlds x 8
questions 60%, the blind model 50%; docs/DESIGN.md). So each step simulates a
few fresh worlds, pushes their questions into a ring of the most recent
`data.replay` questions per scene shard, and draws every update's questions
from the ring. New scenes enter every step and leave after `replay / fresh`
steps, so no scene is used more than a bounded number of times (unlike a
fixed dataset), and held-out evaluation stays on its own seeds. Rings are per
scene shard and drawn from with per-shard keys, so the run is the same on any
device count; the ring is part of the checkpoint.

The ring is also where answers are balanced. A shard holds 2-6 worlds of a
family, which rarely show every answer of a template, so balancing within
the shard left up to 93% of a family's question slots on another template
than the one drawn (README, "Balance"). Each fresh slot therefore asks any
askable world (`BatchSpec.balance = "replay"`), and every update draws the
ring's questions with weights (`draw_weights`) that give each (family,
template) its configured share W, each visible configuration g of it the
share it has among the template's questions in the ring, each answer class
its configuration allows an equal share, and each question of that class an
equal share: w = W * N(g) / N(template) / K(g) / N(g, class). A configuration
missing one of its answers in the ring is not drawn; a template with no
configuration left gives its share to the others (`unserved`, a metric).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from physsim import episode
from physsim import streams
from physsim.train.data import Batch


def per_shard(batch: Batch, shards: int) -> Batch:
    """(shards * n, ...) -> (shards, n, ...)."""
    return jax.tree.map(lambda x: x.reshape((shards, -1) + x.shape[1:]), batch)


def empty(fresh_like: Batch, shards: int, size: int) -> Batch:
    """A ring of `size` questions per scene shard, shaped like `fresh_like` (one shard's fresh questions)."""
    return jax.tree.map(lambda x: jnp.zeros((shards, size) + x.shape[1:], x.dtype), fresh_like)


@struct.dataclass
class Mix:
    """The template mix the ring's draws are balanced to, for a config's families (F) and their templates (up to
    T, padded with zero weight)."""

    weight: jax.Array  # (F, T) float32: each template's share of the questions wanted (sums to 1)
    per_config: jax.Array  # (F, T) bool: balanced within each visible configuration (False: the template asks
    #                        for the configuration itself, so its answers are balanced over all of them)

    @classmethod
    def of(cls, specs: tuple[episode.BatchSpec, ...]) -> Mix:
        """Each family's share of the fresh questions, divided among its templates by their weights."""
        n_templates = max(len(s.templates()) for s in specs)
        total = sum(s.n_questions for s in specs)
        weight = np.zeros((len(specs), n_templates), np.float32)
        per_config = np.zeros((len(specs), n_templates), bool)
        for f, spec in enumerate(specs):
            w = spec.template_weights()
            weight[f, :len(w)] = w * spec.n_questions / total
            per_config[f, :len(w)] = [not t.reads_configuration for t in spec.templates()]
        return cls(weight=jnp.asarray(weight), per_config=jnp.asarray(per_config))


def draw_weights(ring, mix: Mix) -> tuple[jax.Array, jax.Array]:
    """(R,) the probability of drawing each question of one shard's ring (R questions with `family`,
    `template`, `configuration`, `answer_class`, `chance` and `valid`; see the module docstring), and the
    share of the wanted template mix that no question of the ring could serve."""
    template = ring.family * mix.weight.shape[1] + ring.template
    per_config = mix.per_config[ring.family, ring.template]
    n_allowed = jnp.where(ring.chance > 0, jnp.round(1.0 / jnp.maximum(ring.chance, 1e-6)), 1.0)  # K(g)
    valid = ring.valid
    same_t = (template[:, None] == template[None, :]) & valid[None, :]
    same_g = same_t & ((ring.configuration[:, None] == ring.configuration[None, :]) | ~per_config[:, None])
    same_k = same_g & (ring.answer_class[:, None] == ring.answer_class[None, :])
    n_k = same_k.sum(axis=1)
    # Distinct answers in each question's group: each of its questions counts 1 / the questions of its class.
    distinct = (same_g * (1.0 / jnp.maximum(n_k, 1))[None, :]).sum(axis=1)
    complete = valid & (jnp.round(distinct) >= n_allowed)
    n_t = (same_t & complete[None, :]).sum(axis=1)  # questions of the template in complete groups
    n_g = same_g.sum(axis=1)
    w = jnp.where(complete, mix.weight[ring.family, ring.template] * n_g / jnp.maximum(n_t, 1)
                  / n_allowed / jnp.maximum(n_k, 1), 0.0)
    served = jnp.zeros(mix.weight.size).at[template].max(jnp.where(complete, mix.weight.ravel()[template], 0.0))
    unserved = jnp.maximum(1.0 - served.sum() / mix.weight.sum(), 0.0)  # not -1e-7 from float sums
    # Before the first question is asked (or if none could be), draw uniformly among whatever is valid.
    w = jnp.where(w.sum() > 0, w, valid.astype(jnp.float32))
    return w / jnp.maximum(w.sum(), 1e-30), unserved


def push_and_sample(ring: Batch, fresh: Batch, step: jax.Array, key: jax.Array, updates: int, sample: int,
                    mix: Mix) -> tuple[Batch, Batch, jax.Array]:
    """Writes `fresh` (shards * n questions) into the ring at this step's slot and draws `updates`
    batches of `sample` questions per shard from what the ring holds, balanced to `mix` (`draw_weights`),
    with the step key's replay stream (`streams.replay`).

    Returns the new ring (shards, size, ...), the draws (updates, shards * sample, ...) and the share of the
    wanted template mix the rings could not serve (mean over shards).
    """
    shards, size = ring.valid.shape
    fresh = per_shard(fresh, shards)
    n = fresh.valid.shape[1]
    slot = (step * n) % size
    ring = jax.tree.map(lambda r, f: jax.lax.dynamic_update_slice_in_dim(r, f, slot, axis=1), ring, fresh)

    def draw(shard_ring, shard):
        p, unserved = draw_weights(shard_ring, mix)
        index = jax.random.choice(streams.replay(key, shard), size, (updates, sample), p=p)
        return jax.tree.map(lambda x: x[index], shard_ring), unserved  # (updates, sample, ...)

    drawn, unserved = jax.vmap(draw)(ring, jnp.arange(shards))  # (shards, updates, sample, ...)
    drawn = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape((updates, shards * sample) + x.shape[3:]), drawn)
    return ring, drawn, unserved.mean()


@struct.dataclass
class Labels:
    """What balancing reads of a question (the ring's draws without videos or targets), for `simulated_draws`."""

    family: jax.Array
    template: jax.Array
    configuration: jax.Array
    answer_class: jax.Array
    chance: jax.Array
    value: jax.Array
    valid: jax.Array
    fallback: jax.Array  # the slot's template was drawn again (fresh questions only: QABatch.fallback)


@functools.partial(jax.jit, static_argnames=("specs", "steps", "size", "updates", "sample"))
def simulated_draws(key: jax.Array, pools: tuple[episode.Measured, ...], *, specs: tuple[episode.BatchSpec, ...],
                    steps: int, size: int, updates: int, sample: int) -> tuple[Labels, Labels, jax.Array]:
    """A run's questions as one scene shard's ring sees them, without rendering: for `steps` steps, each
    family's `spec.n_worlds` worlds drawn without replacement from its measured pool and asked as the trainer
    asks them (`episode.pick_questions`), pushed into a ring of `size` questions, and `updates` x `sample`
    questions drawn from it (`size` 0: no ring, the fresh questions are the draws). Returns the fresh
    questions (steps, n), the draws (steps, updates * sample) and the share of the mix unserved per step."""
    tok = episode.default_tokenizer()
    mix = Mix.of(specs)

    def fresh_of(k):
        parts = []
        for f, (spec, pool) in enumerate(zip(specs, pools)):
            k_worlds, k_pick = jax.random.split(jax.random.fold_in(k, f))
            worlds = jax.random.choice(k_worlds, pool.sound.shape[0], (spec.n_worlds,), replace=False)
            q = episode.pick_questions(k_pick, spec, jax.tree.map(lambda x, w=worlds: x[w], pool), tok)
            parts.append(Labels(family=jnp.full_like(q["template"], f), template=q["template"],
                                configuration=q["configuration"], answer_class=q["answer_class"],
                                chance=q["chance"], value=q["value"], valid=q["valid"],
                                fallback=q["fallback"]))
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)

    def one(ring, inputs):
        step, k = inputs
        k_fresh, k_draw = jax.random.split(k)
        fresh = fresh_of(k_fresh)
        if not size:
            return ring, (fresh, fresh, jnp.float32(0.0))
        ring, drawn, unserved = push_and_sample(ring, fresh, step, k_draw, updates, sample, mix)
        return ring, (fresh, jax.tree.map(lambda x: x.reshape(-1), drawn), unserved)

    shapes = jax.eval_shape(fresh_of, key)
    ring = empty(shapes, 1, size) if size else None
    _, out = jax.lax.scan(one, ring, (jnp.arange(steps), jax.random.split(key, steps)))
    return out
