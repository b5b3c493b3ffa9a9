"""Every random stream a config derives (physsim.streams) is its own: no two uses draw the same key."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from physsim import streams
from physsim.data import generate
from physsim.sim.params import SPLITS
from physsim.train import config as config_lib
from physsim.train import data, evaluate

from helpers import ROOT

STEPS = 24  # steps of a run whose keys are compared (every step folds the same way)


def derived_keys(config) -> dict[str, np.ndarray]:
    """Every key the trainer, its evaluation, an export, the audit and the physics settings search derive for this
    config's seed, by use:
    (uses, 2) uint32 key data each."""
    seed = config.train.seed
    families = data.family_names(config.data)
    run = streams.training(seed)
    steps = jax.vmap(lambda s: streams.step(run, s))(jnp.arange(STEPS))
    shard_ids = jnp.arange(config.data.shards)
    # The trainer's own derivation of the shard keys (train.data), then of each family's key within a shard.
    shards = jax.vmap(lambda k: data.shard_keys(k, 0, config.data.shards))(steps)  # (steps, shards)
    per_family = jax.vmap(jax.vmap(lambda k: jnp.stack([jax.random.key_data(streams.family(k, f))
                                                        for f in range(len(families))])))(shards)
    keys = {"scenes": per_family.reshape(-1, 2)}
    if config.data.replay:
        replay = jax.vmap(lambda k: jax.vmap(lambda s: streams.replay(k, s))(shard_ids))(steps)
        keys["replay"] = jax.random.key_data(replay).reshape(-1, 2)
    suites = [evaluate.suite_key(seed, f, split) for f in families for split in SPLITS]
    keys["suites"] = np.stack([jax.random.key_data(k) for k in suites])
    validation = [evaluate.suite_key(seed, f, split, "validation") for f in families for split in SPLITS]
    keys["validation suites"] = np.stack([jax.random.key_data(k) for k in validation])
    exports = [generate.batch_key(seed, split, f, b) for split in generate.SPLITS for f in families for b in range(4)]
    keys["export"] = np.stack([jax.random.key_data(k) for k in exports])
    audits = [streams.audit(seed, f, i, b) for f in families for i in range(len(SPLITS)) for b in range(4)]
    keys["audit"] = np.stack([jax.random.key_data(k) for k in audits])
    search = [streams.settings(seed, f, i, b) for f in families for i in range(len(SPLITS)) for b in range(4)]
    keys["settings search"] = np.stack([jax.random.key_data(k) for k in search])
    return {use: np.asarray(k) for use, k in keys.items()}


def shared(keys: dict[str, np.ndarray]) -> list[str]:
    seen: dict[tuple, str] = {}
    clashes = []
    for use, rows in keys.items():
        for row in rows:
            t = tuple(row.tolist())
            if t in seen:
                clashes.append(f"{seen[t]} and {use}")
            seen[t] = use
    return clashes


CONFIGS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_key_a_config_derives_is_distinct(name):
    config = config_lib.load(ROOT / "experiments" / f"{name}.py")
    # At least 4 scene shards with replay on: the case where the replay draw of a shard and the simulation of
    # another once shared a key.
    config = config_lib.replace(config, {"data.shards": max(config.data.shards, 4),
                                         "data.replay": config.data.replay or 64 * len(config.data.families)})
    keys = derived_keys(config)
    assert not shared(keys), shared(keys)[:5]
    n_families = len(config.data.families)
    assert len(keys["scenes"]) == STEPS * config.data.shards * n_families


def test_the_old_replay_derivation_is_caught(monkeypatch):
    """The check has the power it claims: with the derivations the trainer had before physsim.streams (shard i
    from `fold_in(step, i)`, replay draws from `fold_in(fold_in(step, 1), shard)`), the replay draw of shard 0
    is shard 1's first family's simulation key, and the check reports it."""
    monkeypatch.setattr(streams, "shard", lambda step_key, i: jax.random.fold_in(step_key, i))
    monkeypatch.setattr(streams, "replay", lambda step_key, s: jax.random.fold_in(jax.random.fold_in(step_key, 1), s))
    config = config_lib.replace(config_lib.load(ROOT / "experiments" / "tiny.py"), {"data.shards": 2})
    assert any(c == "scenes and replay" for c in shared(derived_keys(config)))


def test_every_registered_family_has_its_own_number_in_the_named_streams():
    """The suite, validation, audit and settings streams fold a family in by its name's first 4 bytes: two
    families sharing them would share their worlds."""
    from physsim import scenarios

    ids = [streams._name_id(name) for name in scenarios.names()]
    assert len(set(ids)) == len(ids), dict(zip(scenarios.names(), ids))
