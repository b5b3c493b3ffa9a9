"""Renderers: camera rays, analytic ray-geom intersection, shading.

Knows nothing of questions or models. Two backends draw the same `Images`:
'jax', the pure-JAX ray caster in `raycast` (the default; jit-able and
shardable inside the training step on any device), and 'warp', MuJoCo Warp's
renderer in `warp_backend` (optional; used to check the ray caster).
"""

from collections.abc import Callable

from physsim import _names
from physsim.render.camera import Camera
from physsim.render.raycast import Images, geom_table, render, render_frame

BACKENDS = ("jax", "warp")


def render_with(backend: str) -> Callable[..., Images]:
    """The batched render function of `backend` (same signature as `raycast.render`)."""
    if backend == "jax":
        return render
    if backend == "warp":
        from physsim.render import warp_backend

        warp_backend.require_warp()
        return warp_backend.render
    raise _names.unknown("render backend", backend, BACKENDS)


__all__ = ["BACKENDS", "Camera", "Images", "geom_table", "render", "render_frame", "render_with"]
