"""Every random stream physsim draws, derived from a seed by named folds, in one place.

    key(seed) ─┬─ TRAIN  ─ step ─┬─ SCENES ─ shard ─ family   simulation, questions, rendering of a step
               │                 └─ REPLAY ─ shard            the step's draws from the replay ring
               ├─ EVAL   ─ family ─ split                     held-out suites (train.evaluate)
               ├─ VALIDATION ─ family ─ split                 validation suites, for tuning a config
               ├─ EXPORT ─ split ─ family ─ batch             frozen sets (physsim.data)
               ├─ AUDIT  ─ family ─ split ─ batch             the label audit (physsim.audit)
               └─ SETTINGS ─ family ─ split ─ batch           the physics settings search (physsim.settings)
    key(seed) itself: the model's initialisation (`nnx.Rngs(seed)`, train.step), kept as it was

Two keys are the same only if their paths are: every use has its own path, so no
two uses ever draw the same numbers. (Before this module the replay draw of shard
0 was `fold_in(fold_in(step, 1), 0)`, the simulation key of shard 1's first family.)
`tests/test_streams.py` derives every key a config uses and checks they differ.
The evaluation, export and audit paths are the ones they had before, so recorded
suites, exports and audits keep their worlds.

Validation suites (`eval.suites="validation"`) are drawn like the held-out
suites but from their own stream, in-distribution only: a config is tuned on
them, never on the held-out suites a run reports.

One path is shared, knowingly: the model's initialisation predates this module
and uses `nnx.Rngs(seed)`, which draws parameter k from `fold_in(key(seed), k)`,
so its first parameters are drawn from the roots above (TRAIN, EVAL, ...). The
roots themselves are only ever folded further, never drawn from, so no draw of
the trainer equals a draw of the initialisation; moving the initialisation to a
path of its own would change every recorded run's initial weights, and is left
for the next rerun of the learning tables.
"""

from __future__ import annotations

import zlib

import jax

TRAIN, EVAL, EXPORT, AUDIT, SETTINGS, VALIDATION = 0, 1, 2, 3, 4, 5  # the streams of a seed
SCENES, REPLAY = 0, 1  # the sub-streams of a training step


def _name_id(name: str) -> int:
    """A family's number in the evaluation and audit streams: its name's first 4 bytes."""
    return int.from_bytes(name.encode()[:4].ljust(4, b"\0"), "little")


def training(seed: int) -> jax.Array:
    """The run's training stream (kept in the train state; `step` derives each step's key from it)."""
    return jax.random.fold_in(jax.random.key(seed), TRAIN)


def step(run_key: jax.Array, index: jax.Array | int) -> jax.Array:
    return jax.random.fold_in(run_key, index)


def shard(step_key: jax.Array, index: jax.Array | int) -> jax.Array:
    """Scene shard `index` of a step: simulated from this key wherever it runs."""
    return jax.random.fold_in(jax.random.fold_in(step_key, SCENES), index)


def family(shard_key: jax.Array, index: int) -> jax.Array:
    """The `index`-th configured family's worlds of a scene shard."""
    return jax.random.fold_in(shard_key, index)


def replay(step_key: jax.Array, shard_index: jax.Array | int) -> jax.Array:
    """The draws of a step's updates from scene shard `shard_index`'s replay ring."""
    return jax.random.fold_in(jax.random.fold_in(step_key, REPLAY), shard_index)


def suite(seed: int, family_name: str, split_index: int) -> jax.Array:
    """A held-out suite's key."""
    return _family_split(EVAL, seed, family_name, split_index)


def validation(seed: int, family_name: str, split_index: int) -> jax.Array:
    """A validation suite's key: as `suite`, from the VALIDATION stream (worlds no held-out suite holds)."""
    return _family_split(VALIDATION, seed, family_name, split_index)


def export(seed: int, split_index: int, family_name: str, batch: int) -> jax.Array:
    """Batch `batch` of a family in an exported split."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), EXPORT), split_index)
    return jax.random.fold_in(jax.random.fold_in(key, zlib.crc32(family_name.encode()) & 0x7FFFFFFF), batch)


def audit(seed: int, family_name: str, split_index: int, batch: int) -> jax.Array:
    """Batch `batch` of the audit's worlds of a family and split."""
    return _worlds(AUDIT, seed, family_name, split_index, batch)


def settings(seed: int, family_name: str, split_index: int, batch: int) -> jax.Array:
    """Batch `batch` of the physics settings search's worlds of a family and split (none the audit judges)."""
    return _worlds(SETTINGS, seed, family_name, split_index, batch)


def _family_split(stream_id: int, seed: int, family_name: str, split_index: int) -> jax.Array:
    stream = jax.random.fold_in(jax.random.key(seed), stream_id)
    return jax.random.fold_in(jax.random.fold_in(stream, _name_id(family_name)), split_index)


def _worlds(stream_id: int, seed: int, family_name: str, split_index: int, batch: int) -> jax.Array:
    return jax.random.fold_in(_family_split(stream_id, seed, family_name, split_index), batch)
