"""Measurements on one world's recorded frames, shared by the families' facts.

Everything here reads the simulated trajectory (positions, velocities,
contact events), never the sampled parameters, so an answer is what happened.
All functions take one world's `Frames` (no batch axis) and are jit-able.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from physsim.render.camera import Camera
from physsim.sim.scene import SceneLayout, scene_index
from physsim.sim.simulate import Frames

MOVED = 0.03  # m: an object that shifts less than this has not moved
STILL = 0.005  # m: an object that shifts less than this has clearly not moved (a "no" with margin)
REST_SPEED = 0.02  # m/s: slower than this, an object is at rest
REST_SPIN = 0.3  # rad/s
REST_SECONDS = 0.2  # an object at rest stays below those speeds for this long at the end of the rollout


def pair(layout: SceneLayout, a: int | None, b: int) -> int:
    """Contact-pair column of objects a and b (a=None: the environment)."""
    entity_a = 0 if a is None else a + 1
    return int(scene_index(layout).pair_of_entities[entity_a, b + 1])


def first_touch(frames: Frames, column: int) -> jax.Array:
    """Time of the first contact of a pair, inf if it never touched."""
    return jnp.min(frames.contact_time[:, column])


def first_hit(frames: Frames, column: int, impulse: jax.Array) -> jax.Array:
    """Time of the contact of a pair that first brings the impulse it exchanged up to `impulse` (N·s): grazes
    that exchange less do not count. inf if it never does."""
    total = jnp.cumsum(frames.contact_impulse[:, column])
    k = jnp.argmax(total >= impulse)
    reached = total[-1] >= impulse
    # The touching that the impulse belongs to started in frame k's interval, or went on from an earlier one.
    started = jnp.where(jnp.isfinite(frames.contact_time[k, column]), frames.contact_time[k, column],
                        jnp.max(jnp.where((jnp.arange(total.shape[0]) <= k) & jnp.isfinite(frames.contact_time[:, column]),
                                          frames.contact_time[:, column], -jnp.inf)))
    return jnp.where(reached, started, jnp.inf)


def first_time(mask: jax.Array, time: jax.Array) -> jax.Array:
    """First frame time where `mask` (T,) holds, inf if never."""
    return jnp.min(jnp.where(mask, time, jnp.inf))


def crossing_time(value: jax.Array, time: jax.Array, level: float) -> jax.Array:
    """First time the (T,) `value` goes from above `level` to at or below it, linearly interpolated between
    the two frames around it; inf if it never does."""
    below = value <= level
    k = jnp.argmax(below)
    k0 = jnp.maximum(k - 1, 0)
    w = (value[k0] - level) / jnp.where(value[k0] != value[k], value[k0] - value[k], 1.0)
    t = jnp.where(k == 0, time[0], time[k0] + jnp.clip(w, 0.0, 1.0) * (time[k] - time[k0]))
    return jnp.where(below.any(), t, jnp.inf)


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


def _throughout_the_end(frames: Frames, still: jax.Array, seconds: float) -> jax.Array:
    """Whether `still` ((T,) or (T, K)) holds in every frame of the last `seconds` of the recording (per column)."""
    late = frames.time >= frames.time[-1] - seconds - 1e-6
    late = late.reshape(late.shape + (1,) * (still.ndim - 1))
    return jnp.all(still | ~late, axis=0)


def at_rest(frames: Frames, i, seconds: float = REST_SECONDS) -> jax.Array:
    """Whether object(s) i stay below the rest speeds over the last `seconds` of the recording."""
    lin = jnp.linalg.norm(frames.linvel[:, i], axis=-1)
    ang = jnp.linalg.norm(frames.angvel[:, i], axis=-1)
    return jnp.all(_throughout_the_end(frames, (lin < REST_SPEED) & (ang < REST_SPIN), seconds))


def settled(frames: Frames, i, seconds: float = REST_SECONDS) -> jax.Array:
    """Whether object i (or each of the objects i) stays within REST_SPEED * seconds (m) and REST_SPIN *
    seconds (rad) of its last pose over the last `seconds` of the recording: at rest on average, whatever
    its instantaneous velocity. MJX's soft contacts keep a box lying still jittering at 0.01-0.025 m/s and
    ~0.1 rad/s (measured on stack towers at rest, parked blocks too), about REST_SPEED: `at_rest` called such
    a box moving in one of two worlds 0.1 mm apart (the shadow world) and not in the other."""
    shift = jnp.linalg.norm(frames.pos[:, i] - frames.pos[-1, i], axis=-1)
    # As `rotation_angle`, from the last pose, for several objects at once.
    turn = 2.0 * jnp.arccos(jnp.clip(jnp.abs(jnp.sum(frames.quat[:, i] * frames.quat[-1, i], axis=-1)), 0.0, 1.0))
    # () or, for several objects i, one per object
    return _throughout_the_end(frames, (shift < REST_SPEED * seconds) & (turn < REST_SPIN * seconds), seconds)


def rotation_angle(frames: Frames, i: int) -> jax.Array:
    """(T,) angle (rad) by which object i has turned since the first frame."""
    q0, q = frames.quat[0, i], frames.quat[:, i]
    cos_half = jnp.clip(jnp.abs(q @ q0), 0.0, 1.0)
    return 2.0 * jnp.arccos(cos_half)


def lowest_point(frames: Frames, i: int, half_size: jax.Array, box: jax.Array) -> jax.Array:
    """(T,) height above z = 0 of the lowest point of object i: a sphere of radius `half_size`, or a cube of
    that half-edge when `box` (its lowest corner, from its orientation)."""
    q = frames.quat[:, i]  # (T, 4) w, x, y, z
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    # Third row of the rotation matrix: how far each body axis reaches down.
    row = jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1)
    depth = jnp.where(box, half_size * jnp.abs(row).sum(axis=-1), half_size)
    return frames.pos[:, i, 2] - depth


def in_view(camera: Camera | None, jitter: float, pos: jax.Array, radius: jax.Array, margin: float = 1.0
            ) -> jax.Array:
    """(...,) bool: a ball of `radius` centred at `pos` (..., 3) lies wholly inside the image, `margin` pixels
    in from its edges, seen from any camera position within `jitter` metres of the camera's (the image of a
    point moves by at most focal * |offset| / depth). Always True without a camera."""
    if camera is None:
        return jnp.ones(pos.shape[:-1], bool)
    col, row, depth = camera.project(pos)
    f = camera.focal_pixels()
    reach = f * (radius + jnp.sqrt(3.0) * jitter) / jnp.maximum(depth, 1e-6) + margin
    inside = ((col - reach >= -0.5) & (col + reach <= camera.width - 0.5)
              & (row - reach >= -0.5) & (row + reach <= camera.height - 0.5))
    return inside & (depth > 0)


def apart_in_image(camera: Camera | None, jitter: float, pos_a: jax.Array, pos_b: jax.Array, radius_a: jax.Array,
                   radius_b: jax.Array, margin: float = 1.0) -> jax.Array:
    """(...,) bool: the images of two balls (centres (..., 3)) do not overlap, `margin` pixels to spare, from
    any camera position within `jitter` m of the camera's (neither hides part of the other). True without
    a camera."""
    if camera is None:
        return jnp.ones(pos_a.shape[:-1], bool)
    col_a, row_a, depth_a = camera.project(pos_a)
    col_b, row_b, depth_b = camera.project(pos_b)
    f = camera.focal_pixels()
    reach = (f * (radius_a + jnp.sqrt(3.0) * jitter) / jnp.maximum(depth_a, 1e-6)
             + f * (radius_b + jnp.sqrt(3.0) * jitter) / jnp.maximum(depth_b, 1e-6))
    return jnp.hypot(col_a - col_b, row_a - row_b) >= reach + margin


def half_visible(camera: Camera | None, jitter: float, pos_a: jax.Array, pos_b: jax.Array, radius_a: jax.Array,
                 radius_b: jax.Array) -> jax.Array:
    """(...,) bool: the images of two balls are centred at least the larger image radius apart (and its
    jitter), so neither covers as much as half of the other. True without a camera."""
    if camera is None:
        return jnp.ones(pos_a.shape[:-1], bool)
    col_a, row_a, depth_a = camera.project(pos_a)
    col_b, row_b, depth_b = camera.project(pos_b)
    f = camera.focal_pixels()
    larger = jnp.maximum(f * radius_a / jnp.maximum(depth_a, 1e-6), f * radius_b / jnp.maximum(depth_b, 1e-6))
    shift = f * jnp.sqrt(3.0) * jitter * (1 / jnp.maximum(depth_a, 1e-6) + 1 / jnp.maximum(depth_b, 1e-6))
    return jnp.hypot(col_a - col_b, row_a - row_b) >= larger + shift


def seen_until(run_shown: jax.Array, visible: jax.Array, k: jax.Array) -> jax.Array:
    """Whether the objects, `visible` (T, N) per recorded frame, are in view in every shown frame up to
    recorded frame k."""
    idx = jnp.arange(visible.shape[0])
    return jnp.all(visible | ~(run_shown & (idx <= k))[:, None])


def may_meet(frames: Frames, i: int, j: int, radius_i: jax.Array, radius_j: jax.Array,
             margin: float = 0.01) -> jax.Array:
    """Whether balls i and j, rolling on at their last recorded velocities (balls roll without resistance:
    straight lines at constant speed), would come within touching distance after the recording ends."""
    p = frames.pos[-1, j, :2] - frames.pos[-1, i, :2]
    v = frames.linvel[-1, j, :2] - frames.linvel[-1, i, :2]
    closing = p @ v < 0
    t = -(p @ v) / jnp.maximum(v @ v, 1e-12)
    closest = jnp.linalg.norm(p + jnp.maximum(t, 0.0) * v)
    return closing & (closest < radius_i + radius_j + margin)


def quiet_after(frames: Frames, active: jax.Array, radius: jax.Array) -> jax.Array:
    """Whether no two active balls (N,) can meet after the recording ends: nothing more will happen between
    them (radius (N,) m)."""
    n = active.shape[0]
    meets = jnp.zeros((), bool)
    for i in range(n):
        for j in range(i + 1, n):
            meets |= active[i] & active[j] & may_meet(frames, i, j, radius[i], radius[j])
    return ~meets


def peak(time: jax.Array, value: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Time and value of the maximum of the parabola through frames k-1, k, k+1 (the exact apex of a
    ballistic flight sampled at those frames); the frame itself at either end of the recording."""
    n = value.shape[0]
    k = jnp.clip(k, 1, n - 2)
    y0, y1, y2 = value[k - 1], value[k], value[k + 1]
    h = time[k + 1] - time[k]
    curvature = y0 - 2 * y1 + y2
    offset = jnp.where(curvature < 0, 0.5 * (y0 - y2) / jnp.where(curvature < 0, curvature, -1.0), 0.0)
    offset = jnp.clip(offset, -1.0, 1.0)
    top = y1 - 0.25 * (y0 - y2) * offset
    return time[k] + offset * h, jnp.maximum(top, y1)


def at_time(frames_value: jax.Array, time: jax.Array, t: jax.Array) -> jax.Array:
    """Value (T, ...) linearly interpolated at time t (clamped to the recording)."""
    t = jnp.clip(t, time[0], time[-1])
    k = jnp.clip(jnp.searchsorted(time, t, side="right") - 1, 0, time.shape[0] - 2)
    w = (t - time[k]) / (time[k + 1] - time[k])
    w = w.reshape(w.shape + (1,) * (frames_value.ndim - 1))
    return (1 - w) * frames_value[k] + w * frames_value[k + 1]


def shown_index_before(run_time: jax.Array, shown: jax.Array, t: jax.Array) -> jax.Array:
    """Index of the last shown frame strictly before time t (-1 if none)."""
    idx = jnp.arange(run_time.shape[0])
    return jnp.max(jnp.where(shown & (run_time < t), idx, -1))


def shown_index_after(run_time: jax.Array, shown: jax.Array, t: jax.Array) -> jax.Array:
    """Index of the first shown frame strictly after time t (T if none)."""
    idx = jnp.arange(run_time.shape[0])
    return jnp.min(jnp.where(shown & (run_time > t), idx, run_time.shape[0]))
