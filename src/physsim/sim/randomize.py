"""Per-world physics: a `WorldParams` pytree written into the fields of one `mjx.Model`.

Domain randomisation is `jax.vmap` over `apply_world`: every world gets its own
masses (with consistent inertias), sizes, frictions, restitutions, static geom
poses and gravity, while the compiled program is shared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import mjx

from physsim.sim import contact
from physsim.sim.scene import SceneIndex, SceneLayout


@struct.dataclass
class WorldParams:
    """Physical description of one world (add a leading batch axis for many).

    Shapes for a layout with N objects and S static geoms.
    """

    gravity: jax.Array  # (3,) m/s²
    mass: jax.Array  # (N,) kg
    size: jax.Array  # (N, 3) MuJoCo geom size (radius / half-extents), m
    friction: jax.Array  # (N,) sliding friction coefficient
    restitution: jax.Array  # (N,) coefficient of restitution, see physsim.sim.contact
    pos: jax.Array  # (N, 3) initial position, m
    quat: jax.Array  # (N, 4) initial orientation (w, x, y, z)
    linvel: jax.Array  # (N, 3) initial linear velocity, world frame, m/s
    angvel: jax.Array  # (N, 3) initial angular velocity, body frame, rad/s
    static_pos: jax.Array  # (S, 3) pose of each static geom
    static_quat: jax.Array  # (S, 4)


def inertia(shape: str, size: jax.Array, mass: jax.Array) -> jax.Array:
    """Principal moments of inertia (..., 3) of a solid geom about its centre."""
    a, b, c = size[..., 0], size[..., 1], size[..., 2]
    if shape == "sphere":
        i = 0.4 * mass * a * a
        return jnp.stack([i, i, i], axis=-1)
    if shape == "box":
        return (mass / 3.0)[..., None] * jnp.stack([b * b + c * c, a * a + c * c, a * a + b * b], axis=-1)
    if shape == "ellipsoid":
        return (mass / 5.0)[..., None] * jnp.stack([b * b + c * c, a * a + c * c, a * a + b * b], axis=-1)
    r, h = a, b  # radius, half-length of the cylindrical part
    if shape == "cylinder":
        side = mass * (3 * r * r + 4 * h * h) / 12.0
        return jnp.stack([side, side, 0.5 * mass * r * r], axis=-1)
    if shape == "capsule":
        v_cyl = jnp.pi * r * r * 2 * h
        v_caps = 4.0 / 3.0 * jnp.pi * r**3
        m_cyl = mass * v_cyl / (v_cyl + v_caps)
        m_caps = mass - m_cyl
        side = m_cyl * (3 * r * r + 4 * h * h) / 12.0 + m_caps * (0.4 * r * r + h * h + 0.75 * h * r)
        axial = 0.5 * m_cyl * r * r + 0.4 * m_caps * r * r
        return jnp.stack([side, side, axial], axis=-1)
    raise ValueError(f"no inertia formula for shape {shape!r}")


def bounding_radius(shape: str, size: jax.Array) -> jax.Array:
    a, b, c = size[..., 0], size[..., 1], size[..., 2]
    if shape == "sphere":
        return a
    if shape == "box":
        return jnp.sqrt(a * a + b * b + c * c)
    if shape == "ellipsoid":
        return jnp.maximum(jnp.maximum(a, b), c)
    if shape == "cylinder":
        return jnp.sqrt(a * a + b * b)
    if shape == "capsule":
        return a + b
    raise ValueError(f"no bounding radius for shape {shape!r}")


def world_fields(layout: SceneLayout, index: SceneIndex, world: WorldParams) -> dict[str, tuple]:
    """The model fields one world changes: {field path: (index into it, new values)}.

    Shared by the MJX path (`apply_world`) and the MuJoCo C path
    (`apply_world_mj`), so both simulate exactly the same world.
    """
    shapes = [o.shape for o in layout.objects]
    inertias = jnp.stack([inertia(s, world.size[i], world.mass[i]) for i, s in enumerate(shapes)])
    rbound = jnp.stack([bounding_radius(s, world.size[i]) for i, s in enumerate(shapes)])
    # The constraint solver scales its regularisation by these "inverse weights";
    # MuJoCo computes them at compile time, so they must follow the new masses.
    inv_mass = 1.0 / world.mass
    inv_rot = jnp.mean(1.0 / inertias, axis=-1)
    dof_invweight = jnp.concatenate([jnp.repeat(inv_mass[:, None], 3, 1), jnp.repeat(inv_rot[:, None], 3, 1)], axis=1)
    body, geom, static = index.object_body, index.object_geom, index.static_geom
    return {
        "opt.gravity": (slice(None), world.gravity),
        "body_mass": (body, world.mass),
        "body_inertia": (body, inertias),
        "body_invweight0": (body, jnp.stack([inv_mass, inv_rot], axis=-1)),
        "dof_invweight0": (index.object_qvel.reshape(-1), dof_invweight.reshape(-1)),
        "geom_size": (geom, world.size),
        "geom_rbound": (geom, rbound),
        "geom_friction": ((geom, 0), world.friction),
        "geom_solref": (geom, contact.restitution_to_solref(world.restitution, layout.timestep)),
        "geom_pos": (static, world.static_pos),
        "geom_quat": (static, world.static_quat),
    }


def _field(model, path: str):
    """The array at a dotted field path such as 'opt.gravity' (MJX or MuJoCo C model)."""
    for part in path.split("."):
        model = getattr(model, part)
    return model


def apply_world(model: mjx.Model, layout: SceneLayout, index: SceneIndex, world: WorldParams) -> mjx.Model:
    """Returns the MJX `model` with one world's physical parameters written in."""
    return model.tree_replace(
        {
            path: _field(model, path).at[where].set(value)
            for path, (where, value) in world_fields(layout, index, world).items()
        }
    )


def apply_world_mj(model: mujoco.MjModel, layout: SceneLayout, index: SceneIndex, world: WorldParams) -> None:
    """Writes one world's physical parameters into a MuJoCo C model, in place."""
    for path, (where, value) in world_fields(layout, index, world).items():
        _field(model, path)[where] = np.asarray(value, dtype=np.float64)
    # MuJoCo 4 C also reads constants derived at compile time from masses and
    # sizes (dof_M0, dof_length, subtree masses, AABBs); recompute all of them.
    mujoco.mj_setConst(model, mujoco.MjData(model))


def initial_state(model: mjx.Model, index: SceneIndex, world: WorldParams) -> tuple[jax.Array, jax.Array]:
    """qpos (nq,) and qvel (nv,) placing every object slot as `world` says."""
    dtype = jnp.result_type(float)  # float32, or float64 under jax_enable_x64
    qpos = jnp.asarray(model.qpos0, dtype)
    qvel = jnp.zeros(model.nv, dtype)
    quat = world.quat / jnp.linalg.norm(world.quat, axis=-1, keepdims=True)
    qpos = qpos.at[index.object_qpos].set(jnp.concatenate([world.pos, quat], axis=-1).astype(dtype))
    qvel = qvel.at[index.object_qvel].set(jnp.concatenate([world.linvel, world.angvel], axis=-1).astype(dtype))
    return qpos, qvel


def static_defaults(layout: SceneLayout) -> tuple[np.ndarray, np.ndarray]:
    """The layout's own static geom poses, (S, 3) and (S, 4)."""
    pos = np.array([s.pos for s in layout.statics], dtype=np.float32).reshape(-1, 3)
    quat = np.array([s.quat for s in layout.statics], dtype=np.float32).reshape(-1, 4)
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    return pos, quat
