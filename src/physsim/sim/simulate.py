"""Batched rollouts: `lax.scan` of `mjx.step`, recorded at a fixed frame rate.

One frame is recorded every `layout.substeps` physics steps (frame 0 is the
initial state). Between two frames the contact events of every entity pair are
accumulated: whether the pair touched, the first time it did, and the normal
impulse it exchanged (N·s), so that causal facts ("what hit the box first")
come from the simulator rather than from the frames.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import mjx

from physsim.sim import randomize
from physsim.sim.scene import SceneIndex, SceneLayout, build_mj_model, put_model, scene_index

# A world whose object moves faster than this, or whose state is not finite,
# has exploded: nothing in the scene families is launched above ~15 m/s.
MAX_SPEED = 100.0


@struct.dataclass
class Frames:
    """Recorded state, one row per frame. Add a leading (B,) axis for a batch.

    Shapes: T frames, N object slots, G geoms, P entity pairs
    (`SceneIndex.pair_entities`; entity 0 is the environment).
    """

    time: jax.Array  # (T,) s
    qpos: jax.Array  # (T, nq)
    qvel: jax.Array  # (T, nv)
    pos: jax.Array  # (T, N, 3) object centre, m
    quat: jax.Array  # (T, N, 4) object orientation (w, x, y, z)
    linvel: jax.Array  # (T, N, 3) m/s, world frame
    angvel: jax.Array  # (T, N, 3) rad/s, body frame
    geom_xpos: jax.Array  # (T, G, 3) every geom's world position (for renderers)
    geom_xmat: jax.Array  # (T, G, 3, 3)
    # Contact events are measured with impl='jax'; with impl='warp' touch is
    # False and time / impulse are NaN ("not measured").
    contact_touch: jax.Array  # (T, P) bool: pair touched during (t[k-1], t[k]]
    contact_time: jax.Array  # (T, P) first touching time in that interval, inf if none
    contact_impulse: jax.Array  # (T, P) normal impulse exchanged in that interval, N·s
    valid: jax.Array  # (T,) bool: state finite and every speed below MAX_SPEED


def _contact_rows(model: mjx.Model, layout: SceneLayout) -> tuple[np.ndarray, np.ndarray]:
    """Static (C, K) efc row indices of each contact's pyramid, and a (C, K) mask."""
    template = mjx.make_data(build_mj_model(layout), impl="jax")
    contact = template._impl.contact
    adr = np.asarray(contact.efc_address)
    dim = np.asarray(contact.dim)
    n_rows = np.where(dim == 1, 1, 2 * (dim - 1))
    k = int(n_rows.max()) if len(n_rows) else 1
    rows = adr[:, None] + np.arange(k)[None, :]
    mask = np.arange(k)[None, :] < n_rows[:, None]
    return np.where(mask, rows, 0).astype(np.int32), mask


def _contact_summary(d: mjx.Data, rows: np.ndarray, mask: np.ndarray, index: SceneIndex):
    """Per entity pair: touching now (P,) bool and normal force now (P,) N."""
    n_pairs = index.n_pairs
    if rows.shape[0] == 0:
        return jnp.zeros(n_pairs, bool), jnp.zeros(n_pairs)
    contact = d._impl.contact
    # With a pyramidal cone the normal force is the sum of the pyramid's edge forces.
    normal = jnp.sum(jnp.where(mask, d._impl.efc_force[rows], 0.0), axis=1)
    entity = jnp.asarray(index.geom_entity)[contact.geom]
    pair = jnp.asarray(index.pair_of_entities)[entity[:, 0], entity[:, 1]]
    touching = contact.dist < 0
    force = jax.ops.segment_sum(jnp.where(touching, normal, 0.0), pair, num_segments=n_pairs)
    touch = jax.ops.segment_max(touching.astype(jnp.int32), pair, num_segments=n_pairs) > 0
    return touch, force


def _object_state(d: mjx.Data, index: SceneIndex):
    return (
        d.xpos[index.object_body],
        d.xquat[index.object_body],
        d.qvel[index.object_qvel[:, :3]],
        d.qvel[index.object_qvel[:, 3:]],
    )


def _frame(d: mjx.Data, index: SceneIndex, touch, first_time, impulse) -> Frames:
    pos, quat, linvel, angvel = _object_state(d, index)
    finite = jnp.isfinite(d.qpos).all() & jnp.isfinite(d.qvel).all()
    speed_ok = jnp.all(jnp.linalg.norm(linvel, axis=-1) < MAX_SPEED)
    return Frames(
        time=d.time,
        qpos=d.qpos,
        qvel=d.qvel,
        pos=pos,
        quat=quat,
        linvel=linvel,
        angvel=angvel,
        geom_xpos=d.geom_xpos,
        geom_xmat=d.geom_xmat,
        contact_touch=touch,
        contact_time=first_time,
        contact_impulse=impulse,
        valid=finite & speed_ok,
    )


def rollout_world(
    world: randomize.WorldParams, *, layout: SceneLayout, n_frames: int, impl: str = "jax"
) -> Frames:
    """Simulates one world for `n_frames` frames (vmap it for a batch)."""
    if n_frames < 1:
        raise ValueError(f"n_frames={n_frames} must be at least 1")
    index = scene_index(layout)
    model = randomize.apply_world(put_model(layout, impl), layout, index, world)
    data = mjx.make_data(build_mj_model(layout), impl=impl)
    qpos, qvel = randomize.initial_state(model, index, world)
    # Explicit, non-weak dtypes: a weakly typed `time` makes mjx.step compile twice (MJX #2306).
    dtype = qpos.dtype
    data = data.replace(qpos=qpos, qvel=qvel, time=jnp.zeros((), dtype))
    data = mjx.forward(model, data)
    track_contacts = impl == "jax"
    if track_contacts:
        rows, mask = _contact_rows(model, layout)
    n_pairs = index.n_pairs
    no_touch = jnp.zeros(n_pairs, bool)
    # MJX-Warp keeps contacts in a dynamic, differently shaped buffer that this
    # module does not read yet: its events are marked not measured (NaN), not "none".
    never = jnp.full(n_pairs, jnp.inf if track_contacts else jnp.nan, dtype)
    no_impulse = jnp.full(n_pairs, 0.0 if track_contacts else jnp.nan, dtype)
    dt = jnp.asarray(layout.timestep, dtype)

    def substep(carry, _):
        d, touch, first_time, impulse = carry
        d = mjx.step(model, d)
        if track_contacts:
            now, force = _contact_summary(d, rows, mask, index)
            first_time = jnp.where(now & ~touch, d.time, first_time)
            touch = touch | now
            impulse = impulse + force * dt
        return (d, touch, first_time, impulse), None

    def frame(d, _):
        (d, touch, first_time, impulse), _ = jax.lax.scan(
            substep, (d, no_touch, never, no_impulse), None, length=layout.substeps
        )
        return d, _frame(d, index, touch, first_time, impulse)

    first = _frame(data, index, no_touch, never, no_impulse)
    _, rest = jax.lax.scan(frame, data, None, length=n_frames - 1)
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b], axis=0), first, rest)


@functools.partial(jax.jit, static_argnames=("layout", "n_frames", "impl"))
def rollout(world: randomize.WorldParams, *, layout: SceneLayout, n_frames: int, impl: str = "jax") -> Frames:
    """Batched rollout: `world` has a leading (B,) axis; returns Frames with (B, T, ...)."""
    return jax.vmap(functools.partial(rollout_world, layout=layout, n_frames=n_frames, impl=impl))(world)


def n_frames_for(layout: SceneLayout, seconds: float) -> int:
    """Frames covering `seconds` of simulated time, the initial frame included."""
    if not (seconds > 0 and np.isfinite(seconds)):
        raise ValueError(f"seconds={seconds} must be in (0, inf)")
    frames = seconds * layout.fps
    if abs(frames - round(frames)) > 1e-6:
        raise ValueError(f"seconds={seconds} is not a whole number of frames at {layout.fps:g} fps")
    return int(round(frames)) + 1


def rollout_reference(world: randomize.WorldParams, *, layout: SceneLayout, n_frames: int) -> np.ndarray:
    """One world (no batch axis) simulated by MuJoCo C; returns object positions (T, N, 3).

    The reference for MJX: same compiled layout, same per-world fields
    (`randomize.apply_world_mj`), same initial state, float64 throughout.
    """
    index = scene_index(layout)
    # MuJoCo C bounds the world body's geoms at compile time for its broad
    # phase, so static geoms are compiled where this world puts them.
    statics = tuple(
        dataclasses.replace(s, pos=tuple(map(float, p)), quat=tuple(map(float, q)))
        for s, p, q in zip(layout.statics, np.asarray(world.static_pos), np.asarray(world.static_quat))
    )
    # A copy: compiled models are cached and shared.
    model = copy.deepcopy(build_mj_model(layout.replace(statics=statics)))
    randomize.apply_world_mj(model, layout, index, world)
    data = mujoco.MjData(model)
    qpos, qvel = randomize.initial_state(put_model(layout), index, world)
    data.qpos[:] = np.asarray(qpos, np.float64)
    data.qvel[:] = np.asarray(qvel, np.float64)
    mujoco.mj_forward(model, data)
    out = np.empty((n_frames, layout.n_objects, 3))
    out[0] = data.xpos[index.object_body]
    for k in range(1, n_frames):
        for _ in range(layout.substeps):
            mujoco.mj_step(model, data)
        out[k] = data.xpos[index.object_body]
    return out

