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
from typing import Callable

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

    Object poses and velocities are those at `time`; geom poses (for renderers) come from the kinematics
    of the last physics step, one step (2 ms) earlier.

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
    # Poses from qpos, not xpos / xquat: a step computes those before integrating, so after it they are one
    # physics step behind `d.time` (free bodies have their frame at the joint, so qpos is the pose).
    return (
        d.qpos[index.object_qpos[:, :3]],
        d.qpos[index.object_qpos[:, 3:]],
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


def mj_model_for(layout: SceneLayout, world: randomize.WorldParams, cache: dict | None = None) -> mujoco.MjModel:
    """A MuJoCo C model holding one world's parameters (no batch axis).

    MuJoCo C bounds the world body's geoms at compile time for its broad
    phase, so a world that moves a static geom (the ramp) gets a model
    compiled with the geom in place. `cache` keeps the last model between
    calls; its parameters are rewritten every call.
    """
    cache = {} if cache is None else cache
    static_pos, static_quat = np.asarray(world.static_pos, np.float64), np.asarray(world.static_quat, np.float64)
    pose = (static_pos.tobytes(), static_quat.tobytes())
    if pose not in cache:
        default_pos, default_quat = randomize.static_defaults(layout)
        if np.allclose(default_pos, static_pos) and np.allclose(default_quat, static_quat):
            moved = layout
        else:
            moved = layout.replace(statics=tuple(
                dataclasses.replace(s, pos=tuple(map(float, p)), quat=tuple(map(float, q)))
                for s, p, q in zip(layout.statics, static_pos, static_quat)))
        cache.clear()  # worlds rarely share a pose: keep one model
        cache[pose] = copy.deepcopy(build_mj_model(moved))  # a copy: compiled models are cached and shared
    model = cache[pose]
    randomize.apply_world_mj(model, layout, scene_index(layout), world)
    return model


def rollout_mj(world: randomize.WorldParams, *, layout: SceneLayout, n_frames: int,
               on_frame: Callable[[int, mujoco.MjData], None] | None = None, cache: dict | None = None,
               contacts: bool = True) -> Frames:
    """One world (no batch axis) simulated by MuJoCo C, recorded as `Frames` of float64 NumPy arrays.

    The reference for MJX: same compiled layout, same per-world fields
    (`randomize.apply_world_mj`), same initial state, and contact events read
    after every physics step as `rollout` reads them. `on_frame(k, data)` is
    called at each recorded frame (a renderer can draw it there). With
    `contacts=False` contact events and geom poses are not read (empty
    arrays): about ten times faster when every physics step is a frame.
    """
    index = scene_index(layout)
    model = mj_model_for(layout, world, cache)
    data = initial_data(model, world, index)
    n_pairs, n_obj = (index.n_pairs if contacts else 0), layout.n_objects
    n_geom = model.ngeom if contacts else 0
    rec = {
        "time": np.zeros(n_frames), "qpos": np.zeros((n_frames, model.nq)), "qvel": np.zeros((n_frames, model.nv)),
        "pos": np.zeros((n_frames, n_obj, 3)), "quat": np.zeros((n_frames, n_obj, 4)),
        "linvel": np.zeros((n_frames, n_obj, 3)), "angvel": np.zeros((n_frames, n_obj, 3)),
        "geom_xpos": np.zeros((n_frames, n_geom, 3)), "geom_xmat": np.zeros((n_frames, n_geom, 3, 3)),
        "contact_touch": np.zeros((n_frames, n_pairs), bool), "contact_time": np.full((n_frames, n_pairs), np.inf),
        "contact_impulse": np.zeros((n_frames, n_pairs)), "valid": np.zeros(n_frames, bool),
    }

    def record(k):
        rec["time"][k] = data.time
        rec["qpos"][k], rec["qvel"][k] = data.qpos, data.qvel
        rec["pos"][k], rec["quat"][k] = data.qpos[index.object_qpos[:, :3]], data.qpos[index.object_qpos[:, 3:]]
        rec["linvel"][k], rec["angvel"][k] = data.qvel[index.object_qvel[:, :3]], data.qvel[index.object_qvel[:, 3:]]
        if contacts:
            rec["geom_xpos"][k], rec["geom_xmat"][k] = data.geom_xpos, data.geom_xmat.reshape(-1, 3, 3)
        finite = np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()
        rec["valid"][k] = finite and bool(np.all(np.linalg.norm(rec["linvel"][k], axis=-1) < MAX_SPEED))
        if on_frame is not None:
            on_frame(k, data)

    record(0)
    dt = model.opt.timestep
    for k in range(1, n_frames):
        touch, first, impulse = rec["contact_touch"][k], rec["contact_time"][k], rec["contact_impulse"][k]
        for _ in range(layout.substeps):
            mujoco.mj_step(model, data)
            n = data.ncon
            if not (n and contacts):
                continue
            contact = data.contact
            now = contact.dist[:n] < 0
            if not now.any():
                continue
            geom = contact.geom[:n][now]
            pair = index.pair_of_entities[index.geom_entity[geom[:, 0]], index.geom_entity[geom[:, 1]]]
            # Pyramidal cone: the normal force is the sum of the pyramid's edge forces.
            adr, dim = contact.efc_address[:n][now], contact.dim[:n][now]
            rows = np.where(dim == 1, 1, 2 * (dim - 1))
            cumulative = np.concatenate([[0.0], np.cumsum(data.efc_force)])
            touching = np.zeros(n_pairs, bool)
            touching[pair] = True
            first[touching & ~touch] = data.time
            touch |= touching
            np.add.at(impulse, pair, (cumulative[adr + rows] - cumulative[adr]) * dt)
        record(k)
    return Frames(**rec)


def initial_data(model: mujoco.MjModel, world: randomize.WorldParams, index) -> mujoco.MjData:
    """MjData of `model` at the world's initial object poses (unit quaternions) and velocities, forwarded."""
    data = mujoco.MjData(model)
    quat = np.asarray(world.quat, np.float64)
    data.qpos[index.object_qpos] = np.concatenate(
        [np.asarray(world.pos, np.float64), quat / np.linalg.norm(quat, axis=-1, keepdims=True)], axis=-1)
    data.qvel[index.object_qvel] = np.concatenate([np.asarray(world.linvel), np.asarray(world.angvel)], axis=-1)
    mujoco.mj_forward(model, data)
    return data


def rollout_mj_steps(worlds: list[randomize.WorldParams], *, layout: SceneLayout, n_steps: int,
                     threads: int = 2) -> Frames:
    """Worlds (each without a batch axis) simulated by MuJoCo C for `n_steps` physics steps with
    `mujoco.rollout` (C++ threads, no Python per step), every step recorded: `Frames` (B, n_steps + 1, ...)
    of float64 NumPy arrays holding time, qpos, qvel and the objects' poses and velocities; geom poses and
    contact events are empty (contacts are for the caller to read from the geometry)."""
    import mujoco.rollout

    index = scene_index(layout)
    models, states = [], []
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    for world in worlds:
        model = copy.deepcopy(mj_model_for(layout, world))
        data = initial_data(model, world, index)
        state = np.zeros(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, state, spec)
        models.append(model)
        states.append(state)
    datas = [mujoco.MjData(models[0]) for _ in range(threads)]
    out, _ = mujoco.rollout.rollout(models, datas, np.stack(states), nstep=n_steps)
    full = np.concatenate([np.stack(states)[:, None], out], axis=1)  # (B, T, nstate)
    nq, nv = models[0].nq, models[0].nv
    time, qpos, qvel = full[..., 0], full[..., 1:1 + nq], full[..., 1 + nq:1 + nq + nv]
    pos, quat = qpos[..., index.object_qpos[:, :3]], qpos[..., index.object_qpos[:, 3:]]
    linvel, angvel = qvel[..., index.object_qvel[:, :3]], qvel[..., index.object_qvel[:, 3:]]
    b, t = time.shape
    finite = np.isfinite(qpos).all(-1) & np.isfinite(qvel).all(-1)
    return Frames(time=time, qpos=qpos, qvel=qvel, pos=pos, quat=quat, linvel=linvel, angvel=angvel,
                  geom_xpos=np.zeros((b, t, 0, 3)), geom_xmat=np.zeros((b, t, 0, 3, 3)),
                  contact_touch=np.zeros((b, t, 0), bool), contact_time=np.zeros((b, t, 0)),
                  contact_impulse=np.zeros((b, t, 0)),
                  valid=finite & (np.linalg.norm(linvel, axis=-1) < MAX_SPEED).all(-1))


def rollout_reference(world: randomize.WorldParams, *, layout: SceneLayout, n_frames: int) -> np.ndarray:
    """Object positions (T, N, 3) of one world simulated by MuJoCo C (see `rollout_mj`)."""
    return rollout_mj(world, layout=layout, n_frames=n_frames).pos
