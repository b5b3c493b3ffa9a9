"""Renderers: camera rays, analytic ray-geom intersection, shading.

Knows nothing of questions or models. The default backend is the pure-JAX
ray caster in `raycast`.
"""

from physsim.render.camera import Camera
from physsim.render.raycast import Images, geom_table, render, render_frame

__all__ = ["Camera", "Images", "geom_table", "render", "render_frame"]
