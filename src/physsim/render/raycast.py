"""The default renderer: a pure-JAX ray caster over a scene's geoms.

Per pixel: nearest hit over all geoms, its depth along the optical axis, which
geom it belongs to, and Lambertian + ambient shading with a shadow cast from
one directional light and a checker texture on planes (so motion and distance
can be seen). Everything is jit-able and batched with `vmap`, so it runs
inside the training step on CPU, GPU or TPU.

Segmentation ids: object slot i -> i, static geom j -> N + j, sky -> -1.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from physsim.render import intersect
from physsim.render.camera import Camera
from physsim.sim.scene import SceneLayout, build_mj_model, scene_index

_TYPE_NAMES = {int(getattr(mujoco.mjtGeom, f"mjGEOM_{name.upper()}")): name for name in intersect.BY_TYPE}

LIGHT_DIRECTION = (0.35, 0.25, -1.0)  # direction the light travels
AMBIENT, DIFFUSE = 0.35, 0.65
SKY = (0.62, 0.74, 0.88)
CHECKER_SIZE = 0.25  # metres per floor tile
CHECKER_DARK = 0.7
FAR = 200.0  # metres; hits farther along the optical axis count as sky (as MuJoCo's zfar)


@struct.dataclass
class Images:
    """Rendered frames; add leading batch / time axes as the inputs had them."""

    rgb: jax.Array  # (H, W, 3) uint8
    depth: jax.Array  # (H, W) float32, metres along the optical axis; inf where nothing is hit
    segmentation: jax.Array  # (H, W) int32, see module docstring


@dataclasses.dataclass(frozen=True)
class GeomTable:
    """Static description of every geom the renderer draws, in MuJoCo geom order."""

    types: tuple[str, ...]
    segment: np.ndarray  # (G,) segmentation id of each geom
    rgba: np.ndarray  # (G, 4)
    static_size: np.ndarray  # (G, 3) compiled sizes (objects are overridden per world)
    object_geom: np.ndarray  # (N,) geom ids of object slots


@functools.lru_cache(maxsize=64)
def geom_table(layout: SceneLayout) -> GeomTable:
    """Checks that every geom type can be drawn and tabulates what the renderer needs."""
    model = build_mj_model(layout)
    index = scene_index(layout)
    types = []
    for g in range(model.ngeom):
        t = int(model.geom_type[g])
        if t not in _TYPE_NAMES:
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g)
            raise ValueError(
                f"geom {name!r} has type {mujoco.mjtGeom(t).name}, which the JAX renderer cannot draw; "
                f"supported: {sorted(intersect.BY_TYPE)}"
            )
        types.append(_TYPE_NAMES[t])
    n = layout.n_objects
    segment = np.full(model.ngeom, -1, np.int32)
    segment[index.object_geom] = np.arange(n)
    segment[index.static_geom] = n + np.arange(len(index.static_geom))
    return GeomTable(
        types=tuple(types),
        segment=segment,
        rgba=np.asarray(model.geom_rgba, np.float32),
        static_size=np.asarray(model.geom_size, np.float32),
        object_geom=index.object_geom,
    )


def _hits(table: GeomTable, origin, directions, xpos, xmat, size):
    """Nearest-hit t (G, R) and world normals (G, R, 3) of rays against every geom.

    `origin` is one point (3,) shared by all rays or one per ray (R, 3).
    """
    ts, normals = [], []
    for g, kind in enumerate(table.types):
        rot = xmat[g]
        local_o = (origin - xpos[g]) @ rot  # rot.T @ v for row vectors
        local_d = directions @ rot
        t, n = intersect.BY_TYPE[kind](local_o, local_d, size[g])
        ts.append(t)
        normals.append(n @ rot.T)
    return jnp.stack(ts), jnp.stack(normals)


def _checker(table: GeomTable, geom, point, xpos, xmat):
    """1 or CHECKER_DARK per pixel on plane geoms, 1 elsewhere."""
    plane_ids = [g for g, kind in enumerate(table.types) if kind == "plane"]
    shade = jnp.ones(point.shape[:-1])
    for g in plane_ids:
        local = (point - xpos[g]) @ xmat[g]
        tile = jnp.floor(local[..., 0] / CHECKER_SIZE) + jnp.floor(local[..., 1] / CHECKER_SIZE)
        dark = jnp.mod(tile, 2.0) > 0.5
        shade = jnp.where((geom == g) & dark, CHECKER_DARK, shade)
    return shade


def render_frame(
    geom_xpos: jax.Array,
    geom_xmat: jax.Array,
    object_size: jax.Array,
    *,
    layout: SceneLayout,
    camera: Camera,
    jitter: jax.Array | None = None,
    shadows: bool = True,
) -> Images:
    """One frame. geom_xpos (G, 3), geom_xmat (G, 3, 3), object_size (N, 3) from the world."""
    table = geom_table(layout)
    size = jnp.asarray(table.static_size).at[table.object_geom].set(object_size)
    origin, directions, cos_axis = camera.rays(jitter)
    h, w = directions.shape[:2]
    rays = directions.reshape(-1, 3)
    t, normals = _hits(table, origin, rays, geom_xpos, geom_xmat, size)
    geom = jnp.argmin(t, axis=0)
    t_hit = jnp.min(t, axis=0)
    hit = t_hit * cos_axis.reshape(-1) <= FAR
    normal = jnp.take_along_axis(normals, geom[None, :, None], axis=0)[0]
    # Shade the side facing the camera (rays can graze planes from below).
    normal = jnp.where(jnp.sum(normal * rays, axis=-1, keepdims=True) > 0, -normal, normal)
    point = origin + jnp.where(hit, t_hit, 0.0)[:, None] * rays

    to_light = -jnp.asarray(LIGHT_DIRECTION, jnp.float32)
    to_light = to_light / jnp.linalg.norm(to_light)
    lambert = jnp.clip(normal @ to_light, 0.0, 1.0)
    if shadows:
        shadow_origin = point + 1e-4 * normal
        shadow_dirs = jnp.broadcast_to(to_light, rays.shape)
        t_shadow, _ = _hits(table, shadow_origin, shadow_dirs, geom_xpos, geom_xmat, size)
        lit = ~jnp.isfinite(jnp.min(t_shadow, axis=0))
        lambert = lambert * lit
    rgba = jnp.asarray(table.rgba)[geom]
    colour = rgba[:, :3] * (AMBIENT + DIFFUSE * lambert)[:, None]
    colour = colour * _checker(table, geom, point, geom_xpos, geom_xmat)[:, None]
    colour = jnp.where(hit[:, None], colour, jnp.asarray(SKY, jnp.float32))
    rgb = jnp.clip(jnp.round(colour * 255.0), 0, 255).astype(jnp.uint8)
    depth = jnp.where(hit, t_hit * cos_axis.reshape(-1), jnp.inf).astype(jnp.float32)
    segmentation = jnp.where(hit, jnp.asarray(table.segment)[geom], -1).astype(jnp.int32)
    return Images(rgb=rgb.reshape(h, w, 3), depth=depth.reshape(h, w), segmentation=segmentation.reshape(h, w))


@functools.partial(jax.jit, static_argnames=("layout", "camera", "shadows"))
def render(
    geom_xpos: jax.Array,
    geom_xmat: jax.Array,
    object_size: jax.Array,
    jitter: jax.Array | None = None,
    *,
    layout: SceneLayout,
    camera: Camera,
    shadows: bool = True,
) -> Images:
    """Batched frames: geom_xpos (B, T, G, 3), geom_xmat (B, T, G, 3, 3), object_size (B, N, 3).

    `jitter` (B, 3), optional, moves each world's camera position (the camera
    keeps looking at its target). Returns Images with (B, T, H, W, ...) arrays.
    """
    if jitter is None:
        jitter = jnp.zeros((geom_xpos.shape[0], 3), jnp.float32)

    def one(xpos, xmat, size, offset):
        return render_frame(xpos, xmat, size, layout=layout, camera=camera, jitter=offset, shadows=shadows)

    per_time = jax.vmap(one, in_axes=(0, 0, None, None))
    return jax.vmap(per_time)(geom_xpos, geom_xmat, object_size, jitter)
