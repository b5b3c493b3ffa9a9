"""Pinhole cameras: pose, field of view, resolution, and the rays through each pixel."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Camera:
    """A camera looking from `position` at `target`, `fovy` degrees vertically.

    Hashable, so renderers can be cached per camera. Pixel (0, 0) is the top
    left; rays go through pixel centres.
    """

    position: tuple[float, float, float] = (0.0, -3.0, 1.0)
    target: tuple[float, float, float] = (0.0, 0.0, 0.3)
    fovy: float = 45.0
    width: int = 64
    height: int = 64

    def __post_init__(self):
        if not (0.0 < self.fovy < 180.0):
            raise ValueError(f"fovy={self.fovy} degrees must be in (0, 180)")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"resolution {self.width}x{self.height} must be at least 1x1")
        if np.allclose(self.position, self.target):
            raise ValueError("camera position and target coincide")

    def frame(self, jitter: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """Camera centre (3,) and rotation (3, 3) whose columns are right, up, backward.

        `jitter` (3,) optionally offsets the position (randomised viewpoints).
        """
        eye = jnp.asarray(self.position, jnp.float32)
        if jitter is not None:
            eye = eye + jitter
        forward = jnp.asarray(self.target, jnp.float32) - eye
        forward = forward / jnp.linalg.norm(forward)
        world_up = jnp.array([0.0, 0.0, 1.0])
        right = jnp.cross(forward, world_up)
        # Looking straight down: any horizontal right vector will do.
        right = jnp.where(jnp.linalg.norm(right) < 1e-6, jnp.array([1.0, 0.0, 0.0]), right)
        right = right / jnp.linalg.norm(right)
        up = jnp.cross(right, forward)
        return eye, jnp.stack([right, up, -forward], axis=1)

    def focal_pixels(self) -> float:
        """Focal length in pixels (same horizontally: square pixels)."""
        return 0.5 * self.height / np.tan(np.deg2rad(self.fovy) / 2)

    def project(self, points: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Pixel column, row (continuous; pixel centres at integers) and depth (m) of world points (..., 3)."""
        eye, rot = self.frame()
        local = (points - eye) @ rot  # (..., 3): right, up, backward
        depth = -local[..., 2]
        f = self.focal_pixels()
        safe = jnp.where(depth > 1e-6, depth, 1e-6)
        col = 0.5 * self.width + f * local[..., 0] / safe - 0.5
        row = 0.5 * self.height - f * local[..., 1] / safe - 0.5
        return col, row, depth

    def rays(self, jitter: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Origin (3,), unit directions (H, W, 3) in world, and each ray's cosine to the optical axis (H, W)."""
        eye, rot = self.frame(jitter)
        f = self.focal_pixels()
        xs = (jnp.arange(self.width, dtype=jnp.float32) + 0.5) - 0.5 * self.width
        ys = 0.5 * self.height - (jnp.arange(self.height, dtype=jnp.float32) + 0.5)
        x, y = jnp.meshgrid(xs, ys)
        local = jnp.stack([x, y, jnp.full_like(x, -f)], axis=-1)
        local = local / jnp.linalg.norm(local, axis=-1, keepdims=True)
        return eye, local @ rot.T, -local[..., 2]
