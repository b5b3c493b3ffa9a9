"""Measurements on one world's recorded frames, shared by the families' facts.

Everything here reads the simulated trajectory (positions, velocities,
contact events), never the sampled parameters, so an answer is what happened.
All functions take one world's `Frames` (no batch axis) and are jit-able.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from physsim.sim.scene import SceneLayout, scene_index
from physsim.sim.simulate import Frames

MOVED = 0.03  # m: an object that shifts less than this has not moved


def pair(layout: SceneLayout, a: int | None, b: int) -> int:
    """Contact-pair column of objects a and b (a=None: the environment)."""
    entity_a = 0 if a is None else a + 1
    return int(scene_index(layout).pair_of_entities[entity_a, b + 1])


def first_touch(frames: Frames, column: int) -> jax.Array:
    """Time of the first contact of a pair, inf if it never touched."""
    return jnp.min(frames.contact_time[:, column])


def first_time(mask: jax.Array, time: jax.Array) -> jax.Array:
    """First frame time where `mask` (T,) holds, inf if never."""
    return jnp.min(jnp.where(mask, time, jnp.inf))


def displacement(frames: Frames, i: int) -> jax.Array:
    """(T,) distance of object i from where it started."""
    return jnp.linalg.norm(frames.pos[:, i] - frames.pos[0, i], axis=-1)


def moved(frames: Frames, i: int, threshold: float = MOVED) -> jax.Array:
    return jnp.max(displacement(frames, i)) > threshold


def start_moving_time(frames: Frames, i: int, threshold: float = MOVED) -> jax.Array:
    return first_time(displacement(frames, i) > threshold, frames.time)


def speed(frames: Frames, i: int) -> jax.Array:
    """(T,) speed of object i."""
    return jnp.linalg.norm(frames.linvel[:, i], axis=-1)


def at_time(frames_value: jax.Array, time: jax.Array, t: jax.Array) -> jax.Array:
    """Value (T, ...) linearly interpolated at time t (clamped to the recording)."""
    t = jnp.clip(t, time[0], time[-1])
    k = jnp.clip(jnp.searchsorted(time, t, side="right") - 1, 0, time.shape[0] - 2)
    w = (t - time[k]) / (time[k + 1] - time[k])
    w = w.reshape(w.shape + (1,) * (frames_value.ndim - 1))
    return (1 - w) * frames_value[k] + w * frames_value[k + 1]
