"""Analytic ray intersection with MuJoCo geom primitives, in the geom's local frame.

Each function takes ray origins `o` and unit directions `d` already expressed
in the geom's frame (shape (..., 3)) and the geom's MuJoCo `size` (3,), and
returns the ray parameter `t` (..., ) of the nearest hit in front of the
origin (inf on a miss) and the outward unit normal (..., 3) in the same frame.
"""

from __future__ import annotations

import jax.numpy as jnp

EPS = 1e-6
INF = jnp.inf


def _first_positive(t0, t1):
    """Smallest root in front of the origin, inf if neither is."""
    t0 = jnp.where(t0 > EPS, t0, INF)
    t1 = jnp.where(t1 > EPS, t1, INF)
    return jnp.minimum(t0, t1)


def _quadratic(a, b, c):
    """Roots of a t² + 2 b t + c = 0 (nan-free; inf where none)."""
    disc = b * b - a * c
    ok = (disc >= 0) & (a > EPS)
    root = jnp.sqrt(jnp.where(ok, disc, 0.0))
    a_safe = jnp.where(ok, a, 1.0)
    t0 = jnp.where(ok, (-b - root) / a_safe, INF)
    t1 = jnp.where(ok, (-b + root) / a_safe, INF)
    return t0, t1


def _normalize(v):
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), EPS)


def plane(o, d, size):
    """z = 0 facing +z; finite when size[0], size[1] > 0 (MuJoCo: 0 means infinite)."""
    dz = d[..., 2]
    safe = jnp.where(jnp.abs(dz) > EPS, dz, 1.0)
    t = jnp.where(jnp.abs(dz) > EPS, -o[..., 2] / safe, INF)
    t = jnp.where((t > EPS) & (o[..., 2] > 0), t, INF)
    p = o + t[..., None] * d
    half_x = jnp.where(size[0] > 0, size[0], INF)
    half_y = jnp.where(size[1] > 0, size[1], INF)
    inside = (jnp.abs(p[..., 0]) <= half_x) & (jnp.abs(p[..., 1]) <= half_y)
    t = jnp.where(inside, t, INF)
    normal = jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0]), jnp.broadcast_shapes(o.shape, d.shape))
    return t, normal


def sphere(o, d, size):
    r = size[0]
    b = jnp.sum(o * d, axis=-1)
    c = jnp.sum(o * o, axis=-1) - r * r
    t = _first_positive(*_quadratic(jnp.ones_like(b), b, c))
    p = o + jnp.where(jnp.isfinite(t), t, 0.0)[..., None] * d
    return t, _normalize(p)


def ellipsoid(o, d, size):
    inv = 1.0 / size
    os_, ds = o * inv, d * inv
    a = jnp.sum(ds * ds, axis=-1)
    b = jnp.sum(os_ * ds, axis=-1)
    c = jnp.sum(os_ * os_, axis=-1) - 1.0
    t = _first_positive(*_quadratic(a, b, c))
    p = o + jnp.where(jnp.isfinite(t), t, 0.0)[..., None] * d
    return t, _normalize(p * inv * inv)


def box(o, d, size):
    """Slab test against the box [-size, size]."""
    safe_d = jnp.where(jnp.abs(d) > EPS, d, EPS)
    t_lo = (-size - o) / safe_d
    t_hi = (size - o) / safe_d
    t_near = jnp.minimum(t_lo, t_hi)
    t_far = jnp.maximum(t_lo, t_hi)
    enter = jnp.max(t_near, axis=-1)
    leave = jnp.min(t_far, axis=-1)
    hit = (leave >= enter) & (leave > EPS)
    t = jnp.where(hit, jnp.where(enter > EPS, enter, leave), INF)
    axis = jnp.argmax(t_near, axis=-1)
    sign = -jnp.sign(jnp.take_along_axis(safe_d, axis[..., None], axis=-1))[..., 0]
    normal = jnp.eye(3)[axis] * sign[..., None]
    return t, normal


def _cylinder_side(o, d, r, h):
    """Hit on the lateral surface |z| <= h of the z-axis cylinder of radius r."""
    a = d[..., 0] ** 2 + d[..., 1] ** 2
    b = o[..., 0] * d[..., 0] + o[..., 1] * d[..., 1]
    c = o[..., 0] ** 2 + o[..., 1] ** 2 - r * r
    t0, t1 = _quadratic(a, b, c)
    z0 = o[..., 2] + jnp.where(jnp.isfinite(t0), t0, 0.0) * d[..., 2]
    z1 = o[..., 2] + jnp.where(jnp.isfinite(t1), t1, 0.0) * d[..., 2]
    t0 = jnp.where(jnp.abs(z0) <= h, t0, INF)
    t1 = jnp.where(jnp.abs(z1) <= h, t1, INF)
    t = _first_positive(t0, t1)
    p = o + jnp.where(jnp.isfinite(t), t, 0.0)[..., None] * d
    normal = _normalize(p * jnp.array([1.0, 1.0, 0.0]))
    return t, normal


def _nearest(*hits):
    ts = jnp.stack([t for t, _ in hits], axis=0)
    normals = jnp.stack([n for _, n in hits], axis=0)
    k = jnp.argmin(ts, axis=0)
    t = jnp.take_along_axis(ts, k[None], axis=0)[0]
    normal = jnp.take_along_axis(normals, k[None, ..., None], axis=0)[0]
    return t, normal


def cylinder(o, d, size):
    """MuJoCo cylinder: radius size[0], half-height size[1] along z, flat caps."""
    r, h = size[0], size[1]
    caps = []
    for sign in (1.0, -1.0):
        shifted = o - jnp.array([0.0, 0.0, sign * h])
        flipped = shifted * jnp.array([1.0, 1.0, sign])
        t, _ = plane(flipped, d * jnp.array([1.0, 1.0, sign]), jnp.zeros(3))
        p = o + jnp.where(jnp.isfinite(t), t, 0.0)[..., None] * d
        t = jnp.where(p[..., 0] ** 2 + p[..., 1] ** 2 <= r * r, t, INF)
        caps.append((t, jnp.broadcast_to(jnp.array([0.0, 0.0, sign]), jnp.broadcast_shapes(o.shape, d.shape))))
    return _nearest(_cylinder_side(o, d, r, h), *caps)


def capsule(o, d, size):
    """MuJoCo capsule: radius size[0], cylinder half-length size[1] along z, hemispherical ends."""
    r, h = size[0], size[1]
    ends = []
    for sign in (1.0, -1.0):
        centre = jnp.array([0.0, 0.0, sign * h])
        t, n = sphere(o - centre, d, jnp.stack([r, r, r]))
        ends.append((t, n))
    return _nearest(_cylinder_side(o, d, r, h), *ends)


BY_TYPE = {
    "plane": plane,
    "sphere": sphere,
    "ellipsoid": ellipsoid,
    "box": box,
    "cylinder": cylinder,
    "capsule": capsule,
}
